// Package appliance turns a config file into a running homenet: it loads and
// validates the TOML config, detects the platform, installs the service and
// runs the loop that wires control, relay and subnet together. Data flows one
// way: config → appliance → the parts.
package appliance
