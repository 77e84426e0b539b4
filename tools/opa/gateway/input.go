package gateway

import (
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strings"
)

// The endpoints, as the engine's: one per gateway protocol.
const (
	nginxPath    = "/v1/authz/nginx"
	forwardPath  = "/v1/authz/forward"
	envoyPrefix  = "/v1/authz/envoy"
	maxHops      = 16 // trusted proxies followed back, as engine/location/networks.py
	peerVia      = "peer"
	unknownPlace = "unknown"
)

// Headers that ask an upstream to act as another method (the engine's METHOD_OVERRIDES).
var methodOverrides = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// original is the request a gateway asks about, as its protocol carries it.
type original struct {
	method, host, uri string
	forwardedFor      []string
}

// forwardedFor is the first X-Forwarded-For header, as the engine reads it.
func forwardedFor(h http.Header) []string {
	if values := h.Values("X-Forwarded-For"); len(values) > 0 {
		return values[:1]
	}
	return nil
}

// originalOf reads the original request from a gateway's call, by endpoint; ok is false
// for a path that is none of them.
func originalOf(r *http.Request, target string) (original, []string, bool) {
	h := r.Header
	switch {
	case target == nginxPath:
		host := h.Get("X-Original-Host")
		if host == "" {
			host = r.Host
		}
		return original{h.Get("X-Original-Method"), host, h.Get("X-Original-Uri"), forwardedFor(h)}, nil, true
	case target == forwardPath:
		return original{h.Get("X-Forwarded-Method"), h.Get("X-Forwarded-Host"), h.Get("X-Forwarded-Uri"), forwardedFor(h)}, nil, true
	case strings.HasPrefix(target, envoyPrefix+"/"):
		// The original path, as sent (before any decoding), then its query.
		var faults []string
		if partialBody(h) {
			faults = append(faults, "partial_body")
		}
		return original{r.Method, r.Host, strings.TrimPrefix(r.RequestURI, envoyPrefix), forwardedFor(h)}, faults, true
	}
	return original{}, nil, false
}

// partialBody is whether Envoy says it sent only part of the body (with_request_body).
func partialBody(h http.Header) bool {
	return strings.EqualFold(strings.TrimSpace(h.Get("X-Envoy-Auth-Partial-Body")), "true")
}

// asked is the decision input and who asked (the gateway's name, for the decision log).
type asked struct {
	input  map[string]any
	caller string
}

// build turns a gateway's call into the input the engine's gateway endpoint builds
// (engine/api/routes/gateway.py `_judge`): only the gateway's credential vouches for
// the identity, country and X-Forwarded-For headers.
func (c *Config) build(h http.Header, remoteAddr string, o original, faults []string) asked {
	fault := func(code string) {
		for _, f := range faults {
			if f == code {
				return
			}
		}
		faults = append(faults, code)
	}
	// A header larger than the engine reads is not read at all: a deny saying so.
	read := func(value string, present bool) (string, bool) {
		if present && len(value) > c.MaxHeaderBytes {
			fault("header_too_large")
			return "", false
		}
		return value, present
	}
	caller, vouched := "", false
	if values, present := h[c.CredentialHeader]; present {
		sum := sha256.Sum256([]byte(strings.TrimSpace(values[0])))
		if name, known := c.credentials[sum]; known {
			caller, vouched = name, true
		} else {
			fault("credential_invalid")
		}
	} else if c.anyIdentityHeader(h) {
		fault("identity_without_credential") // no one vouches for it
	} else {
		fault("credential_missing") // a sidecar believes only the gateway's credential
	}

	method, _ := read(o.method, true)
	host, _ := read(o.host, true)
	uri, _ := read(o.uri, true)
	uri = strings.ToValidUTF8(uri, "\uFFFD")
	path, query, _ := strings.Cut(uri, "?")

	peer := addressOf(remoteAddr)
	var forwarded []string
	if vouched {
		for _, v := range o.forwardedFor {
			if value, ok := read(v, true); ok {
				forwarded = append(forwarded, value)
			}
		}
	}
	client, via, bad := c.client(peer, forwarded)
	if bad {
		fault("forwarded_for_invalid")
		client, via, _ = c.client(peer, nil)
	}
	origin := map[string]any{"channel": "gateway"}
	var attested string
	if vouched && c.CountryHeader != "" {
		if value, ok := read(h.Get(c.CountryHeader), len(h.Values(c.CountryHeader)) > 0); ok {
			attested = strings.ToUpper(strings.TrimSpace(value))
		}
	}
	derived := ""
	if client.IsValid() {
		derived = c.country(client)
		origin["derived"] = derived
		origin["address"] = client.String()
		origin["via"] = via
	}
	location := unknownPlace
	switch {
	case attested != "":
		origin["source"], origin["attested"], origin["attested_by"] = "attested", attested, caller
		location = attested
	case derived != "" && derived != unknownPlace:
		origin["source"], location = "derived", derived
	case derived == "":
		origin["source"] = "declared"
	default:
		origin["source"] = "derived"
	}

	context := map[string]any{"method": strings.ToUpper(method), "host": host, "path": path}
	if query != "" {
		context["query"] = query
	}
	if client.IsValid() {
		context["client_ip"] = client.String()
		if via == peerVia {
			context["client_ip_set_by"] = peerVia
		} else {
			context["client_ip_set_by"] = "gateway " + strings.TrimPrefix(via, "proxy ")
		}
	}
	overrides := []any{}
	for _, name := range methodOverrides {
		for _, v := range h.Values(name) {
			value, _ := read(v, true)
			overrides = append(overrides, value)
		}
	}
	input := map[string]any{
		"location":         location,
		"origin":           origin,
		"context":          context,
		"method_overrides": overrides,
	}
	if vouched {
		if subject := c.subject(h, read); subject != "" {
			input["subject"] = subject
		}
	}
	list := make([]any, len(faults))
	for i, f := range faults {
		list[i] = f
	}
	input["faults"] = list
	return asked{input, caller}
}

func (c *Config) anyIdentityHeader(h http.Header) bool {
	for _, name := range c.IdentityHeaders {
		if _, present := h[name]; present {
			return true
		}
	}
	return false
}

// subject is the first identity header with a value, as the gateway set it.
func (c *Config) subject(h http.Header, read func(string, bool) (string, bool)) string {
	for _, name := range c.IdentityHeaders {
		if value, ok := read(h.Get(name), len(h.Values(name)) > 0); ok && strings.TrimSpace(value) != "" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// client is the client's address: the peer, or, while the hop before is a trusted proxy,
// the X-Forwarded-For entry it appended; bad when such an entry is no address.
func (c *Config) client(peer netip.Addr, forwardedFor []string) (netip.Addr, string, bool) {
	var entries []string
	for _, value := range forwardedFor {
		for _, e := range strings.Split(value, ",") {
			entries = append(entries, strings.TrimSpace(e))
		}
	}
	address, hops := peer, []string{}
	for address.IsValid() && len(entries) > 0 && c.trusts(address) {
		if len(hops) == maxHops {
			return netip.Addr{}, "", true
		}
		hops = append(hops, address.String())
		entry := entries[len(entries)-1]
		entries = entries[:len(entries)-1]
		address = addressOf(entry)
		if !address.IsValid() {
			return netip.Addr{}, "", true
		}
	}
	if len(hops) == 0 {
		return address, peerVia, false
	}
	for i, j := 0, len(hops)-1; i < j; i, j = i+1, j-1 {
		hops[i], hops[j] = hops[j], hops[i]
	}
	return address, "proxy " + strings.Join(hops, ", "), false
}

func (c *Config) trusts(address netip.Addr) bool {
	for _, p := range c.proxies {
		if p.Contains(address) {
			return true
		}
	}
	return false
}

// country is the configured network's country for the address, else unknown (a sidecar
// has no IP-to-country database: docs/gateway.md).
func (c *Config) country(address netip.Addr) string {
	for _, n := range c.networks {
		if n.prefix.Contains(address) {
			return n.country
		}
	}
	return unknownPlace
}

// addressOf reads an address as a peer or X-Forwarded-For gives it (1.2.3.4,
// 1.2.3.4:5678, [2001:db8::1]:443, 2001:db8::1), an IPv4-mapped one as IPv4, no zone.
func addressOf(text string) netip.Addr {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, "[") {
		text, _, _ = strings.Cut(text[1:], "]")
	} else if strings.Count(text, ":") == 1 {
		text, _, _ = strings.Cut(text, ":")
	}
	text, _, _ = strings.Cut(text, "%")
	address, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}
	}
	return address.Unmap()
}
