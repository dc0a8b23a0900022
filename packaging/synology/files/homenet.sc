[homenet_tcp]
title="homenet control server and DERP relay"
desc="homenet"
port_forward="yes"
dst.ports="8080,8443/tcp"

[homenet_udp]
title="homenet STUN and WireGuard"
desc="homenet"
port_forward="yes"
dst.ports="3478,41641/udp"
