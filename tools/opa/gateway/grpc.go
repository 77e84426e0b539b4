package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/textproto"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
)

// checker answers Envoy's ext_authz v3 gRPC Check (envoy.service.auth.v3.Authorization)
// as the HTTP flavour answers at /v1/authz/envoy/<path>: the same input from the same
// request, the same answer, carried in a CheckResponse.
type checker struct {
	authv3.UnimplementedAuthorizationServer
	plugin *Plugin
}

func newGRPCServer(p *Plugin) *grpc.Server {
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, checker{plugin: p})
	// Reflection lets grpcurl and ghz call Check by name; it shows only Envoy's public API.
	reflection.Register(s)
	return s
}

// Check never fails: whatever goes wrong is a denied CheckResponse with a reason code.
func (c checker) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	defer func() {
		if failed := recover(); failed != nil { // still a deny, never an error, never an allow
			resp = c.plugin.unavailable(ctx, asked{input: map[string]any{}}, decisionID(), nil, fmt.Errorf("%v", failed)).checkResponse()
		}
	}()
	r := req.GetAttributes().GetRequest().GetHttp()
	h := headersOf(r)
	var faults []string
	if partialBody(h) {
		faults = append(faults, "partial_body")
	}
	o := original{method: r.GetMethod(), host: r.GetHost(), uri: r.GetPath(), forwardedFor: forwardedFor(h)}
	remote := ""
	if who, ok := peer.FromContext(ctx); ok && who.Addr != nil {
		remote = who.Addr.String() // the proxy that asks, as RemoteAddr is over HTTP
	}
	return c.plugin.decide(ctx, h, remote, o, faults).checkResponse(), nil
}

// headersOf reads the original request's headers from either of the forms Envoy sends:
// the map (repeated headers joined by commas) or, with encode_raw_headers, the list.
func headersOf(r *authv3.AttributeContext_HttpRequest) http.Header {
	h := http.Header{}
	for name, value := range r.GetHeaders() {
		h.Add(textproto.CanonicalMIMEHeaderKey(name), value)
	}
	if len(h) == 0 {
		for _, kv := range r.GetHeaderMap().GetHeaders() {
			value := kv.GetValue()
			if raw := kv.GetRawValue(); len(raw) > 0 {
				value = string(raw)
			}
			h.Add(textproto.CanonicalMIMEHeaderKey(kv.GetKey()), value)
		}
	}
	return h
}

// checkResponse carries a reply as ext_authz expects it: OK with the headers for the
// upstream (overwriting any a client sent), or PERMISSION_DENIED / UNAUTHENTICATED with
// the status, headers and JSON body for the client.
func (r reply) checkResponse() *authv3.CheckResponse {
	status, raw := r.encoded()
	headers := make([]*corev3.HeaderValueOption, 0, len(r.headers)+1)
	for name, value := range r.headers {
		headers = append(headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: name, Value: value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	if status >= 200 && status < 300 {
		return &authv3.CheckResponse{
			Status:       &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: headers}},
		}
	}
	code := codes.PermissionDenied
	if status == http.StatusUnauthorized {
		code = codes.Unauthenticated
	}
	if raw != nil {
		headers = append(headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "Content-Type", Value: "application/json"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: headers,
			Body:    string(raw),
		}},
	}
}
