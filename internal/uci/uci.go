// Package uci reads OpenWrt's UCI configuration files (/etc/config/*),
// the way uci itself splits their lines into words. It only reads: homenet
// changes OpenWrt's configuration with the uci command, as its package
// scripts do.
package uci

import "strings"

// Section is one section of a UCI file.
type Section struct {
	Type, Name string
	Options    map[string]string
	Lists      map[string][]string
}

// Parse returns the sections of a UCI file: "config TYPE [NAME]"
// lines, each followed by "option KEY VALUE" and "list KEY VALUE" lines.
// Lines it cannot read (an unterminated quote, an option before any
// config line, an unknown keyword) are skipped: a corrupted file on flash
// must not stop the gateway.
func Parse(text string) []Section {
	var secs []Section
	// cur is the section options go to; none before the first config line
	// and after an unreadable one, lest they land in the section before.
	var cur *Section
	for _, line := range strings.Split(text, "\n") {
		f, ok := Fields(line)
		if !ok {
			if w := strings.Fields(line); len(w) > 0 && w[0] == "config" {
				cur = nil
			}
			continue
		}
		switch {
		case len(f) == 0:
		case f[0] == "config":
			cur = nil
			if len(f) < 2 || f[1] == "" {
				continue
			}
			s := Section{Type: f[1], Options: map[string]string{}, Lists: map[string][]string{}}
			if len(f) > 2 {
				s.Name = f[2]
			}
			secs = append(secs, s)
			cur = &secs[len(secs)-1]
		case cur == nil || len(f) < 3:
		case f[0] == "option":
			cur.Options[f[1]] = f[2]
		case f[0] == "list":
			cur.Lists[f[1]] = append(cur.Lists[f[1]], f[2])
		}
	}
	return secs
}

// Fields splits a UCI line into words as uci does: single quotes keep
// everything up to the next one, double quotes and bare words take
// backslash escapes, adjacent parts join ('a'"b"c is one word), and a #
// outside a word starts a comment. It reports false for an unterminated
// quote.
func Fields(line string) ([]string, bool) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words, true
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, false
			}
			w.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				w.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, false
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, true
}
