package relay

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger, the kind certmagic takes, that writes to
// l. certmagic narrates every step at Info, so Debug and Info become slog
// Debug; Warn and Error keep their level until ctx is done, after which
// everything is Debug (cancelled ACME jobs complain as they exit).
func newZapLogger(ctx context.Context, l *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{h: l.Handler(), ctx: ctx})
}

// slogCore is a zapcore.Core writing to a slog.Handler.
type slogCore struct {
	h     slog.Handler
	ctx   context.Context // the relay's lifetime
	attrs []slog.Attr     // from With
}

func (c *slogCore) level(l zapcore.Level) slog.Level {
	switch {
	case c.ctx.Err() != nil:
		return slog.LevelDebug
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), c.level(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, ctx: c.ctx, attrs: append(slices.Clip(c.attrs), zapAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	rec := slog.NewRecord(e.Time, c.level(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		rec.AddAttrs(slog.String("logger", e.LoggerName))
	}
	rec.AddAttrs(c.attrs...)
	rec.AddAttrs(zapAttrs(fields)...)
	return c.h.Handle(context.Background(), rec)
}

func (c *slogCore) Sync() error { return nil }

// zapAttrs converts fields to slog attributes, in order (a field that
// encodes to several keys, like an error's, gives them sorted).
func zapAttrs(fields []zapcore.Field) []slog.Attr {
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
			attrs = append(attrs, slog.Any(k, enc.Fields[k]))
		}
	}
	return attrs
}
