package relay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestZapLogger(t *testing.T) {
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
	})
	zl := newZapLogger(ctx, slog.New(h)).Named("obtain").With(zap.String("identifier", "relay.test"))

	zl.Info("obtaining certificate", zap.Int("attempt", 2))
	zl.Warn("slow", zap.Strings("names", []string{"a", "b"}))
	zl.Error("will retry", zap.Error(errors.New("boom")))
	cancel()
	zl.Error("job failed", zap.Error(context.Canceled))

	want := []string{
		`level=DEBUG msg="obtaining certificate" logger=obtain identifier=relay.test attempt=2`,
		`level=WARN msg=slow logger=obtain identifier=relay.test names="[a b]"`,
		`level=ERROR msg="will retry" logger=obtain identifier=relay.test error=boom`,
		`level=DEBUG msg="job failed" logger=obtain identifier=relay.test error="context canceled"`,
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Below the handler's level nothing is even encoded.
	buf.Reset()
	quiet := newZapLogger(context.Background(), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if ce := quiet.Check(zap.InfoLevel, "chatter"); ce != nil {
		t.Errorf("Info is enabled on a Warn-level handler")
	}
	quiet.Warn("kept")
	if !strings.Contains(buf.String(), "msg=kept") {
		t.Errorf("Warn was dropped: %q", buf.String())
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
