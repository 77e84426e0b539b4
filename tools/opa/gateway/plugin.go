package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	bundles "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"google.golang.org/grpc"
)

// Query is the one decision a request is answered by: datavisa.gateway's answer without
// the decision-log mask, which OPA's decision-log plugin applies itself (system.log).
const Query = "data.datavisa.gateway.reply"

// The document the decision log records an answer under when the answer cannot be had.
const gatewayPath = "datavisa/gateway/decision"

// Factory makes the plugin for OPA's runtime (runtime.RegisterPlugin).
type Factory struct{}

// Validate reads the plugin's configuration.
func (Factory) Validate(_ *plugins.Manager, raw []byte) (any, error) {
	return parseConfig(raw)
}

// New makes the plugin; it serves once started.
func (Factory) New(m *plugins.Manager, config any) plugins.Plugin {
	p := &Plugin{manager: m}
	p.config.Store(config.(*Config))
	m.RegisterCompilerTrigger(func(storage.Transaction) { // a bundle was activated
		p.prepared.Store(nil)
		p.revisions.Store(nil)
	})
	m.UpdatePluginStatus(Name, &plugins.Status{State: plugins.StateNotReady})
	return p
}

// Plugin serves the gateway endpoints on its own address.
type Plugin struct {
	manager  *plugins.Manager
	config   atomic.Pointer[Config]
	prepared atomic.Pointer[rego.PreparedEvalQuery]
	// The active bundles' revisions, for the decision log; read again after an activation.
	revisions atomic.Pointer[map[string]server.BundleInfo]
	heard     atomic.Int64 // when the engine last confirmed the grants bundle (Unix ns)
	mu        sync.Mutex
	server    *http.Server
	grpc      *grpc.Server // Envoy ext_authz v3 gRPC, when grpc_addr is set
}

// Start listens on the configured addresses and answers there.
func (p *Plugin) Start(context.Context) error {
	if b := bundle.Lookup(p.manager); b != nil {
		b.Register(Name, p.bundleStatus)
	}
	return p.listen()
}

func (p *Plugin) listen() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.config.Load()
	listener, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		p.manager.UpdatePluginStatus(Name, &plugins.Status{State: plugins.StateErr, Message: err.Error()})
		return fmt.Errorf("datavisa_gateway: %w", err)
	}
	var grpcListener net.Listener
	if cfg.GRPCAddr != "" {
		if grpcListener, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			_ = listener.Close()
			p.manager.UpdatePluginStatus(Name, &plugins.Status{State: plugins.StateErr, Message: err.Error()})
			return fmt.Errorf("datavisa_gateway: grpc_addr: %w", err)
		}
	}
	p.server = &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Larger headers than that are refused by net/http (431) before they are read.
		MaxHeaderBytes: 64 << 10,
	}
	go func() { _ = p.server.Serve(listener) }()
	if grpcListener != nil {
		p.grpc = newGRPCServer(p)
		go func() { _ = p.grpc.Serve(grpcListener) }()
	}
	p.manager.UpdatePluginStatus(Name, &plugins.Status{State: plugins.StateOK})
	return nil
}

// Stop closes the listener and waits a little for requests being answered.
func (p *Plugin) Stop(ctx context.Context) {
	if b := bundle.Lookup(p.manager); b != nil {
		b.Unregister(Name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.server != nil {
		shutdown, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = p.server.Shutdown(shutdown)
		p.server = nil
	}
	if p.grpc != nil {
		p.grpc.GracefulStop()
		p.grpc = nil
	}
	p.manager.UpdatePluginStatus(Name, &plugins.Status{State: plugins.StateNotReady})
}

// Reconfigure takes a new configuration; a new address means listening anew.
func (p *Plugin) Reconfigure(ctx context.Context, config any) {
	next := config.(*Config)
	previous := p.config.Swap(next)
	if previous.Addr != next.Addr || previous.GRPCAddr != next.GRPCAddr {
		p.Stop(ctx)
		_ = p.Start(ctx)
	}
}

// bundleStatus notes when the grants bundle was last confirmed current: every successful
// request counts, a 304 to a long poll as much as a download.
func (p *Plugin) bundleStatus(status bundle.Status) {
	if status.Name == p.config.Load().GrantsBundle && !status.LastSuccessfulRequest.IsZero() {
		p.heard.Store(status.LastSuccessfulRequest.UnixNano())
	}
}

func (p *Plugin) serveHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if failed := recover(); failed != nil { // still a deny, never a 5xx
			p.unavailable(r.Context(), asked{input: map[string]any{}}, decisionID(), nil, fmt.Errorf("%v", failed)).writeHTTP(w)
		}
	}()
	target := r.RequestURI
	if !strings.HasPrefix(target, envoyPrefix+"/") {
		target, _, _ = strings.Cut(target, "?")
	}
	o, faults, ok := originalOf(r, target)
	if !ok {
		reply{http.StatusNotFound, nil, map[string]any{"error": map[string]any{
			"code": "not_found", "message": "no such endpoint: /v1/authz/nginx, /v1/authz/forward or /v1/authz/envoy/<path>",
		}}}.writeHTTP(w)
		return
	}
	p.decide(r.Context(), r.Header, r.RemoteAddr, o, faults).writeHTTP(w)
}

// reply is what a gateway is told: the status, headers and JSON body the answer names.
type reply struct {
	status  int
	headers map[string]string
	body    map[string]any
}

// decide builds the input of one gateway request, whichever protocol carried it, and
// answers it.
func (p *Plugin) decide(ctx context.Context, h http.Header, remoteAddr string, o original, faults []string) reply {
	cfg := p.config.Load()
	a := cfg.build(h, remoteAddr, o, faults)
	if cfg.GrantsBundle != "-" {
		a.input["edge"] = map[string]any{"grants_heard_ns": p.heard.Load()}
	}
	return p.answer(ctx, a)
}

// answer evaluates the one decision, logs it, and says what to reply. Whatever goes
// wrong is a deny (policy_unavailable), never a 5xx and never an allow.
func (p *Plugin) answer(ctx context.Context, a asked) reply {
	id := decisionID()
	store := p.manager.Store
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return p.unavailable(ctx, a, id, nil, err)
	}
	defer store.Abort(ctx, txn)
	got, err := p.eval(ctx, txn, a.input)
	if err != nil {
		return p.unavailable(ctx, a, id, txn, err)
	}
	p.logAST(ctx, txn, id, a, got.path, got.input, got.decision)
	got.headers["X-DataVisa-Decision-Id"] = id
	if e, ok := got.body["error"].(map[string]any); ok {
		e["decision_id"] = id
	}
	return reply{got.status, got.headers, got.body}
}

// answered is data.datavisa.gateway.reply, read from the evaluation's own terms: what the
// decision log records stays as OPA's values (no conversion to Go and back), and only
// the status, headers and a deny's body become Go values.
type answered struct {
	path     string
	input    ast.Value
	decision ast.Value
	status   int
	headers  map[string]string
	body     map[string]any
}

// asTerm keeps an evaluation's result as it is, instead of converting it to Go values.
func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

func (p *Plugin) eval(ctx context.Context, txn storage.Transaction, input map[string]any) (*answered, error) {
	pq, err := p.query(ctx)
	if err != nil {
		return nil, err
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, err
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(value), rego.EvalTransaction(txn))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, errors.New(Query + " is undefined: is the policy bundle active?")
	}
	term, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, errors.New("malformed answer: not a term")
	}
	return readAnswer(term.Value)
}

// readAnswer checks the answer's shape: anything else is malformed, a deny.
func readAnswer(v ast.Value) (*answered, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, errors.New("malformed answer: not an object")
	}
	field := func(name string) ast.Value {
		if t := obj.Get(ast.InternedTerm(name)); t != nil {
			return t.Value
		}
		return nil
	}
	got := &answered{input: field("input"), decision: field("decision"), headers: map[string]string{}}
	if path, ok := field("path").(ast.String); ok {
		got.path = string(path)
	}
	if n, ok := field("status").(ast.Number); ok {
		if status, ok := n.Int(); ok {
			got.status = status
		}
	}
	if got.status < 200 || got.status > 499 || got.path == "" || got.input == nil || got.decision == nil {
		return nil, fmt.Errorf("malformed answer: status %d, path %q", got.status, got.path)
	}
	headers, ok := field("headers").(ast.Object)
	if !ok {
		return nil, errors.New("malformed answer: no headers")
	}
	var bad error
	headers.Foreach(func(k, v *ast.Term) {
		name, ok1 := k.Value.(ast.String)
		value, ok2 := v.Value.(ast.String)
		if !ok1 || !ok2 {
			bad = errors.New("malformed answer: a header that is not a string")
			return
		}
		got.headers[string(name)] = string(value)
	})
	if bad != nil {
		return nil, bad
	}
	switch body := field("body").(type) {
	case nil, ast.Null:
	case ast.Object:
		asJSON, err := ast.JSON(body)
		if err != nil {
			return nil, fmt.Errorf("malformed answer: %w", err)
		}
		got.body, _ = asJSON.(map[string]any)
	default:
		return nil, errors.New("malformed answer: a body that is not an object")
	}
	if got.status >= 300 && got.body == nil {
		return nil, fmt.Errorf("malformed answer: a deny (%d) without a body", got.status)
	}
	return got, nil
}

// query is the prepared reply, prepared once after each bundle activation (the compiler
// trigger in New forgets it) and reused by every request until the next.
func (p *Plugin) query(ctx context.Context) (*rego.PreparedEvalQuery, error) {
	if pq := p.prepared.Load(); pq != nil {
		return pq, nil
	}
	pq, err := rego.New(
		rego.Query(Query),
		rego.Compiler(p.manager.GetCompiler()),
		rego.Store(p.manager.Store),
		rego.Runtime(p.manager.Info),
		rego.GenerateJSON(asTerm),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	p.prepared.Store(&pq)
	return &pq, nil
}

// unavailable is the deny when the decision cannot be had, as the engine's
// (engine/policy/decide.py `_unavailable`, routes/gateway.py `_deny`).
func (p *Plugin) unavailable(ctx context.Context, a asked, id string, txn storage.Transaction, why error) reply {
	reason := map[string]any{"code": "policy_unavailable", "message": "no policy decision, so deny: " + why.Error()}
	decision := map[string]any{"allow": false, "reasons": []any{reason}}
	if txn != nil {
		p.log(ctx, txn, id, a, gatewayPath, a.input, decision)
	}
	headers := map[string]string{"X-DataVisa-Reasons": "policy_unavailable", "X-DataVisa-Decision-Id": id}
	return reply{http.StatusForbidden, headers, map[string]any{"error": map[string]any{
		"code": "access_denied", "message": reason["message"], "reasons": []any{reason}, "decision_id": id,
	}}}
}

// log hands a decision the plugin made itself (a deny when policy could not answer) to
// OPA's decision-log plugin.
func (p *Plugin) log(ctx context.Context, txn storage.Transaction, id string, a asked, path string, input, result any) {
	p.record(ctx, &server.Info{Txn: txn, DecisionID: id, Path: path, Input: &input, Results: &result}, a)
}

// logAST hands policy's decision to OPA's decision-log plugin as the evaluation gave it:
// the input already as OPA's value, which the plugin's mask and drop policies read
// without converting it again.
func (p *Plugin) logAST(ctx context.Context, txn storage.Transaction, id string, a asked, path string, input, result ast.Value) {
	in, err := ast.JSON(input)
	if err != nil {
		p.manager.Logger().Error("datavisa_gateway: decision log: %v", err)
		return
	}
	out, err := ast.JSON(result)
	if err != nil {
		p.manager.Logger().Error("datavisa_gateway: decision log: %v", err)
		return
	}
	p.record(ctx, &server.Info{Txn: txn, DecisionID: id, Path: path, Input: &in, InputAST: input, Results: &out}, a)
}

// record completes a decision with who asked, when and the bundles' revisions, and logs
// it; the decision-log plugin masks it (system.log) and uploads it. The caller is the
// gateway the credential names.
func (p *Plugin) record(ctx context.Context, info *server.Info, a asked) {
	logger := logs.Lookup(p.manager)
	if logger == nil {
		return
	}
	info.RemoteAddr = a.caller
	info.Timestamp = time.Now().UTC()
	info.Bundles = map[string]server.BundleInfo{}
	if known := p.revisions.Load(); known != nil {
		info.Bundles = *known
	} else if names, err := bundleRevisions(ctx, p.manager.Store, info.Txn); err == nil {
		p.revisions.Store(&names)
		info.Bundles = names
	}
	if err := logger.Log(ctx, info); err != nil {
		p.manager.Logger().Error("datavisa_gateway: decision log: %v", err)
	}
}

func bundleRevisions(ctx context.Context, store storage.Store, txn storage.Transaction) (map[string]server.BundleInfo, error) {
	names, err := bundles.ReadBundleNamesFromStore(ctx, store, txn)
	if err != nil {
		return nil, err
	}
	out := map[string]server.BundleInfo{}
	for _, name := range names {
		revision, err := bundles.ReadBundleRevisionFromStore(ctx, store, txn, name)
		if err == nil {
			out[name] = server.BundleInfo{Revision: revision}
		}
	}
	return out, nil
}

// encoded is the reply's body as JSON (nil for none); a body that cannot be encoded
// becomes a plain deny.
func (r reply) encoded() (int, []byte) {
	if r.body == nil {
		return r.status, nil
	}
	raw, err := json.Marshal(r.body)
	if err != nil {
		return http.StatusForbidden, []byte(`{"error":{"code":"access_denied","message":"denied","reasons":[],"decision_id":null}}`)
	}
	return r.status, raw
}

func (r reply) writeHTTP(w http.ResponseWriter) {
	for name, value := range r.headers {
		w.Header().Set(name, value)
	}
	status, raw := r.encoded()
	if raw == nil {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// decisionID is a random UUID (version 4), as OPA's own decision ids.
func decisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
