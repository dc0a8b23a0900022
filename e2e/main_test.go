package e2e

import (
	"testing"

	"homenet/e2e/lab"
)

func TestMain(m *testing.M) { lab.Main(m) }
