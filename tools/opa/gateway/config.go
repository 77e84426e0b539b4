// Package gateway is an OPA plugin that answers gateways itself: nginx auth_request,
// Caddy forward_auth and Traefik ForwardAuth, and Envoy ext_authz in HTTP mode, on the
// same paths as the DataVisa engine's /v1/authz endpoints (docs/gateway.md), and Envoy
// ext_authz v3 over gRPC on an address of its own (grpc.go).
//
// It holds no policy. A request becomes the input the engine's gateway endpoint builds
// (engine/api/routes/gateway.py), one evaluation of data.datavisa.gateway.answer decides
// route, access and log mask together, and the answer's status, headers and body are
// written back as they are. The decision goes to OPA's decision-log plugin, which masks it
// with system.log and uploads it to the engine.
package gateway

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/util"
)

// Name is the plugin's key under `plugins:` in OPA's configuration.
const Name = "datavisa_gateway"

// Config is the plugin's configuration. The header names mean what the engine's
// `gateway:` section says they mean; credentials are the SHA-256 (hex) of each gateway
// service token this sidecar believes, naming the gateway (as `datavisa token issue`
// stores it), since a sidecar cannot ask the engine's token store.
type Config struct {
	Addr             string            `json:"addr"`
	GRPCAddr         string            `json:"grpc_addr"` // Envoy ext_authz v3 gRPC; none when empty
	CredentialHeader string            `json:"credential_header"`
	Credentials      map[string]string `json:"credentials"`
	IdentityHeaders  []string          `json:"identity_headers"`
	CountryHeader    string            `json:"country_header"`
	Proxies          []string          `json:"proxies"`
	Networks         map[string]string `json:"networks"`
	MaxHeaderBytes   int               `json:"max_header_bytes"`
	// The bundle whose last confirmation by the engine counts as the grants' age
	// (datavisa.gateway's policy_stale); "-" when the grants do not come by bundle.
	GrantsBundle string `json:"grants_bundle"`

	credentials map[[32]byte]string
	proxies     []netip.Prefix
	networks    []network
}

type network struct {
	prefix  netip.Prefix
	country string
}

func (c *Config) validate() error {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:9191"
	}
	if c.CredentialHeader == "" {
		c.CredentialHeader = "X-DataVisa-Gateway-Token"
	}
	if c.IdentityHeaders == nil {
		c.IdentityHeaders = []string{"X-Auth-Request-User", "X-Forwarded-User"}
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 4096
	}
	if c.MaxHeaderBytes < 0 {
		return errors.New("max_header_bytes: must be positive")
	}
	if c.GrantsBundle == "" {
		c.GrantsBundle = "grants"
	}
	c.CredentialHeader = textproto.CanonicalMIMEHeaderKey(c.CredentialHeader)
	c.CountryHeader = textproto.CanonicalMIMEHeaderKey(c.CountryHeader)
	for i, name := range c.IdentityHeaders {
		c.IdentityHeaders[i] = textproto.CanonicalMIMEHeaderKey(name)
	}
	c.credentials = map[[32]byte]string{}
	for hash, name := range c.Credentials {
		raw, err := hex.DecodeString(strings.ToLower(hash))
		if err != nil || len(raw) != 32 {
			return fmt.Errorf("credentials: %q is not the SHA-256 of a token, in hex", hash)
		}
		if name == "" {
			return fmt.Errorf("credentials: %q names no gateway", hash)
		}
		c.credentials[[32]byte(raw)] = name
	}
	for _, cidr := range c.Proxies {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("proxies: %q is not a network (CIDR)", cidr)
		}
		c.proxies = append(c.proxies, prefix.Masked())
	}
	for cidr, country := range c.Networks {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("networks: %q is not a network (CIDR)", cidr)
		}
		c.networks = append(c.networks, network{prefix.Masked(), strings.ToUpper(country)})
	}
	// The most specific network wins, as in the engine's location.networks.
	slices.SortStableFunc(c.networks, func(a, b network) int {
		if d := b.prefix.Bits() - a.prefix.Bits(); d != 0 {
			return d
		}
		return strings.Compare(a.prefix.String(), b.prefix.String())
	})
	return nil
}

func parseConfig(raw []byte) (*Config, error) {
	var c Config
	if err := util.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}
