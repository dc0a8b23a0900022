package control

import (
	_ "github.com/BurntSushi/toml"
	_ "golang.org/x/crypto/acme/autocert"
	_ "golang.org/x/net/http2"
	_ "modernc.org/sqlite"
	_ "tailscale.com/control/controlbase"
	_ "tailscale.com/control/controlhttp/controlhttpserver"
	_ "tailscale.com/control/tsp"
	_ "tailscale.com/derp/derphttp"
	_ "tailscale.com/derp/derpserver"
	_ "tailscale.com/ipn/ipnlocal"
	_ "tailscale.com/net/stunserver"
	_ "tailscale.com/net/tstun"
	_ "tailscale.com/tailcfg"
	_ "tailscale.com/tsd"
	_ "tailscale.com/types/key"
	_ "tailscale.com/util/zstdframe"
	_ "tailscale.com/wgengine"
)
