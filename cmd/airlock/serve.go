package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/airlockdev/airlock/internal/admin"
	"github.com/airlockdev/airlock/internal/blobstore"
	"github.com/airlockdev/airlock/internal/cache"
	"github.com/airlockdev/airlock/internal/config"
	"github.com/airlockdev/airlock/internal/dnsserver"
	"github.com/airlockdev/airlock/internal/egress"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/registry"
	"github.com/airlockdev/airlock/internal/upstream"
)

const serveSummary = "run the components the config enables (registry, cache, gateway, dns, admin) until SIGTERM"

const serveUsage = `
Runs every component whose section sets a listen address, in one process.
Without --config the embedded default runs the registry on 127.0.0.1:5000 and
the admin endpoints (/metrics, /healthz, /readyz) on 127.0.0.1:9090, with data
under ./airlock-data.

Signals: SIGTERM or SIGINT stop accepting, drain requests in flight for up to
--grace, then exit 0. SIGHUP re-reads the config file and applies what can
change without a restart (registry users, anonymousPull, TLS certificate, log
level, and the policy of the gateway and DNS: new flows and queries get it,
established tunnels stay). So does a change of the file's content, polled every
--watch (default 2s; 0 turns it off). An invalid file is reported and the
running config is kept.

Example:
  airlock serve
  airlock serve --config /etc/airlock/airlock.yaml --log-format text`

var serveCmd = command{summary: serveSummary, usage: serveUsage, run: runServe}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("serve", serveSummary, serveUsage, stderr)
	logFormat := fs.String("log-format", "", "override log.format: json or text")
	grace := fs.Duration("grace", 30*time.Second, "how long shutdown waits for requests in flight")
	watch := fs.Duration("watch", 2*time.Second, "how often to check the config file for changes and reload (0: only on SIGHUP)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "airlock serve: unexpected argument %q; see 'airlock serve --help'\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "airlock serve: %v\nfix the file and run 'airlock config check %s'\n", err, *cfgPath)
		return exitFinding
	}
	format := cfg.Log.Format
	if *logFormat != "" {
		format = *logFormat
	}
	log, level, err := newLogger(stderr, format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintf(stderr, "airlock serve: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, *cfgPath, log, level, *grace, *watch); err != nil {
		log.Error("airlock stopped", "err", err)
		return exitFinding
	}
	return exitOK
}

// component is a running server.
type component struct {
	name     string
	shutdown func(context.Context) error
}

func serve(ctx context.Context, cfg *config.File, cfgPath string, log *slog.Logger, level *slog.LevelVar, grace, watch time.Duration) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	adm := admin.New(reg, log.With("component", "admin"))

	errc := make(chan error, 4)
	var comps []component
	var regSrv *registry.Server

	if cfg.Registry.Listen != "" {
		rc := cfg.Registry.Config
		adm.SetReady("registry", "starting")
		bs, err := blobstore.Open(rc.Storage.Path, blobstore.Options{UploadTTL: rc.EffectiveUploadTTL(), Logger: log.With("component", "blobstore")})
		if err != nil {
			return fmt.Errorf("open registry storage %s: %w", rc.Storage.Path, err)
		}
		store, resolver, inventory, err := registryStore(ctx, &cfg.Registry.Cache, bs, log, reg)
		if err != nil {
			return err
		}
		if inventory != nil {
			adm.Handle("GET /cache", inventory)
		}
		regSrv, err = registry.New(&rc, registry.Deps{
			Store:    store,
			Resolver: resolver,
			Logger:   log.With("component", "registry"),
			Metrics:  registry.NewMetrics(reg),
			Purge:    bs.PurgeUploads,
		})
		if err != nil {
			return err
		}
		if err := regSrv.LoadTLS(&rc); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", rc.Listen)
		if err != nil {
			return fmt.Errorf("registry: listen on %s: %w (is another process using it? set registry.listen)", rc.Listen, err)
		}
		go func() { errc <- wrap("registry", regSrv.Serve(ctx, ln)) }()
		comps = append(comps, component{"registry", regSrv.Shutdown})
		adm.SetReady("registry", "")
	}

	var pol *policy.Policy
	if cfg.Gateway.ProxyListen != "" || cfg.Gateway.TransparentListen != "" || cfg.Gateway.L4Listen != "" || cfg.DNS.Listen != "" {
		var err error
		if pol, err = compilePolicy(cfg, log); err != nil {
			return err
		}
	}

	var dns *dnsserver.Server
	if cfg.DNS.Listen != "" {
		var err error
		dns, err = dnsserver.New(cfg.DNS, dnsserver.Deps{
			Logger: log.With("component", "dns"), Registerer: reg, Policy: pol,
			AllowedInternalRanges: cfg.Gateway.AllowedInternalRanges.Prefixes(), AllowIPv6: cfg.Gateway.AllowIPv6,
		})
		if err != nil {
			return err
		}
		go func() { errc <- wrap("dns", dns.ListenAndServe(ctx)) }()
		comps = append(comps, component{"dns", dns.Shutdown})
	}

	var gw *egress.Server
	if cfg.Gateway.ProxyListen != "" || cfg.Gateway.TransparentListen != "" || cfg.Gateway.L4Listen != "" {
		var err error
		deps := egress.Deps{Policy: pol, Logger: log.With("component", "gateway"), Metrics: egress.NewMetrics(reg)}
		if dns != nil {
			// FQDN network rules match exactly what airlock DNS answered,
			// and the gateway resolves names as airlock DNS answers them
			// (private zones, forwarders, cache); otherwise the system
			// resolver (including /etc/hosts).
			deps.Names = dns.Observations()
			deps.Resolver = dns
		}
		gw, err = egress.New(&cfg.Gateway, deps)
		if err != nil {
			return err
		}
		for _, l := range []struct {
			addr  string
			serve func(context.Context, net.Listener) error
		}{{cfg.Gateway.ProxyListen, gw.ServeProxy}, {cfg.Gateway.TransparentListen, gw.ServeTransparent}} {
			if l.addr == "" {
				continue
			}
			ln, err := net.Listen("tcp", l.addr)
			if err != nil {
				return fmt.Errorf("gateway: listen on %s: %w (set gateway.proxyListen / transparentListen)", l.addr, err)
			}
			go func() { errc <- wrap("gateway", l.serve(ctx, ln)) }()
		}
		if cfg.Gateway.L4Listen != "" {
			ln, err := egress.ListenTransparent(ctx, cfg.Gateway.L4Listen)
			if err != nil {
				return fmt.Errorf("gateway: %w (set gateway.l4Listen, run as root)", err)
			}
			go func() { errc <- wrap("gateway l4", gw.ServeL4(ctx, ln)) }()
			// The same address over UDP: TPROXY hands UDP network-rule
			// ports (and udp/443) to it.
			pc, err := egress.ListenTransparentUDP(ctx, cfg.Gateway.L4Listen)
			if err != nil {
				return fmt.Errorf("gateway: %w (set gateway.l4Listen, run as root)", err)
			}
			go func() { errc <- wrap("gateway l4 udp", gw.ServeL4UDP(ctx, pc)) }()
		}
		for _, d := range pol.DNATListeners() {
			if d.Proto == policy.ProtoUDP {
				pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(d.Addr))
				if err != nil {
					return fmt.Errorf("gateway: UDP DNAT listen on %s: %w (is it an address of this host?)", d.Addr, err)
				}
				go func() { errc <- wrap("gateway dnat udp", gw.ServeDNATUDP(ctx, pc)) }()
				continue
			}
			ln, err := net.Listen("tcp", d.Addr.String())
			if err != nil {
				return fmt.Errorf("gateway: DNAT listen on %s: %w (is it an address of this host?)", d.Addr, err)
			}
			go func() { errc <- wrap("gateway dnat", gw.ServeDNAT(ctx, ln)) }()
		}
		comps = append(comps, component{"gateway", gw.Shutdown})
	}

	if cfg.Admin.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin: listen on %s: %w (set admin.listen)", cfg.Admin.Listen, err)
		}
		go func() { errc <- wrap("admin", adm.Serve(ln)) }()
		comps = append(comps, component{"admin", adm.Shutdown})
	}
	if len(comps) == 0 {
		return errors.New("nothing to run: no section of the config sets a listen address")
	}
	log.Info("airlock started", "config", describeConfig(cfgPath))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var changed <-chan struct{} // nil (never ready) without a file to watch
	if cfgPath != "" && watch > 0 {
		changed = watchFile(ctx, cfgPath, watch)
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "grace", grace.String())
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-hup:
			reload(cfgPath, cfg, log, level, regSrv, gw, dns)
		case _, ok := <-changed:
			if !ok {
				changed = nil
				continue
			}
			log.Info("config file changed; reloading", "config", describeConfig(cfgPath))
			reload(cfgPath, cfg, log, level, regSrv, gw, dns)
		}
	}
	adm.SetReady("airlock", "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	for i := len(comps) - 1; i >= 0; i-- {
		if err := comps[i].shutdown(sctx); err != nil {
			log.Warn("shutdown did not drain in time", "component", comps[i].name, "err", err)
		}
	}
	return runErr
}

// registryStore is the plain local store, or, with cache rules, the
// pull-through cache in front of it (which also resolves ?ns= requests).
func registryStore(ctx context.Context, cc *cache.Config, bs *blobstore.Store, log *slog.Logger, reg prometheus.Registerer) (registry.Store, registry.Resolver, http.Handler, error) {
	local := registry.NewLocalStore(bs)
	if len(cc.CacheRules) == 0 {
		return local, nil, nil, nil
	}
	creds, err := cc.Credentials(os.LookupEnv)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("registry.credentialSets: %w", err)
	}
	up, err := upstream.New(upstream.Options{
		Endpoints:   cc.Upstreams,
		Credentials: creds,
		Timeout:     cc.UpstreamTimeout,
		// Redirects and token realms may reach these internal ranges
		// besides public addresses; the upstreams' own endpoints any.
		AllowedInternal: cc.UpstreamAllowedInternalRanges.Prefixes(),
		Logger:          log.With("component", "upstream"),
		Metrics:         upstream.NewMetrics(reg),
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("registry.upstreams: %w", err)
	}
	cs, err := cache.New(cc, cache.Deps{Local: local, Blobs: bs, Upstream: cache.FromClient(up), Logger: log.With("component", "cache"), Registry: reg})
	if err != nil {
		return nil, nil, nil, err
	}
	go cs.Run(ctx)
	return cs, cs, cs.InventoryHandler(), nil
}

// compilePolicy builds the policy and logs its warnings (tag entries skipped
// for want of policy.location, …).
func compilePolicy(cfg *config.File, log *slog.Logger) (*policy.Policy, error) {
	pol, err := policy.Compile(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	for _, w := range pol.Warnings() {
		log.Warn("policy", "warning", fmt.Sprint(w))
	}
	return pol, nil
}

func wrap(name string, err error) error {
	if err == nil {
		return fmt.Errorf("%s stopped", name)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// reload applies a re-read config file; on any error the running config stays.
func reload(cfgPath string, running *config.File, log *slog.Logger, level *slog.LevelVar, regSrv *registry.Server, gw *egress.Server, dns *dnsserver.Server) {
	next, err := config.Load(cfgPath)
	if err != nil {
		log.Error("reload: config invalid, keeping the running config", "config", describeConfig(cfgPath), "err", err.Error())
		return
	}
	if next.Registry.Listen != running.Registry.Listen || next.Registry.Storage.Path != running.Registry.Storage.Path || next.Admin.Listen != running.Admin.Listen {
		log.Warn("reload: listen addresses and storage paths change only on restart")
	}
	if regSrv != nil {
		if err := regSrv.Reload(&next.Registry.Config); err != nil {
			log.Error("reload: registry kept its running config", "err", err)
			return
		}
	}
	if gw != nil || dns != nil {
		pol, err := compilePolicy(next, log)
		if err != nil {
			log.Error("reload: policy invalid, the gateway and DNS keep the running policy", "err", err)
			return
		}
		if gw != nil {
			gw.SetPolicy(pol) // new flows get it; established tunnels stay
		}
		if dns != nil {
			dns.SetPolicy(pol)
		}
	}
	if err := level.UnmarshalText([]byte(next.Log.Level)); err == nil {
		log.Info("reloaded", "config", describeConfig(cfgPath), "log_level", next.Log.Level)
	}
}

func describeConfig(path string) string {
	if path == "" {
		return "(embedded default)"
	}
	return path
}
