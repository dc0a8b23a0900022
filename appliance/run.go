package appliance

import (
	"context"
	"errors"
	"log/slog"
)

// Serve runs control and relay (and, when enabled, the gateway agent) until
// ctx is done. It is what `homenet serve` runs.
func Serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	return errors.New("not implemented yet")
}
