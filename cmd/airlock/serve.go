package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"reflect"
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
	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/upstream"
)

// The gateway resolves names through airlock DNS; its event loops answer
// names DNS holds (zones, cache) without a hand-off.
var _ egress.CachedResolver = (*dnsserver.Server)(nil)

const serveSummary = "run the components the config enables (registry, cache, gateway, dns, admin) until SIGTERM"

const serveUsage = `
Runs every component whose section sets a listen address, in one process.
Without --config the embedded default runs the registry on 127.0.0.1:5000 and
the admin endpoints (/metrics, /healthz, /readyz) and the console on
127.0.0.1:9090, with data under ./airlock-data.

Signals: SIGTERM or SIGINT stop accepting, drain requests in flight for up to
--grace, then exit 0. SIGHUP re-reads the config file and applies what can
change without a restart (registry and admin users, anonymousPull, TLS
certificate, log level, and the policy of the gateway, DNS and console: new
flows and queries get it, established tunnels stay). So does a change of the file's content, polled every
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

func serve(ctx context.Context, cfg *config.File, cfgPath string, log *slog.Logger, level *slog.LevelVar, grace, watch time.Duration) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The console keeps the recent decision records, teed from the logger
	// every component logs through (wrapped first: the replica attribute
	// reaches the ring's lines too).
	con := newConsole(cfg)
	log = con.tee(log)
	// With replicas every record and every airlock metric names the replica
	// (cluster.name), so logs and scrapes of several replicas can be merged.
	var areg prometheus.Registerer = reg
	clog := log.With("component", "cluster") // the cluster adds the replica itself
	if redisConfigured(cfg) {
		name, err := replicaName(cfg)
		if err != nil {
			return err
		}
		log = log.With("replica", name)
		areg = prometheus.WrapRegistererWith(prometheus.Labels{"replica": name}, reg)
	}
	areg.MustRegister(con.decisions.Collectors()...)
	adm := admin.New(cfg.Admin, reg, log.With("component", "admin"))
	// hits counts every gateway flow's and DNS question's decision per rule
	// (airlock_policy_rule_hits_total; the console's policy pages).
	hits := policy.NewHits(time.Now())
	areg.MustRegister(newHitsCollector(hits))
	cw, err := newClusterWatch(cfg, adm, clog, areg)
	if err != nil {
		return err
	}
	us, err := buildUnits(cfg, cw, adm, log, areg, hits, con)
	if err != nil {
		return err
	}
	if len(us) == 1 { // the cluster alone
		return errors.New("nothing to run: no section of the config sets a listen address")
	}
	// Serving outlives the signal: Shutdown ends it within --grace, then
	// run ends whatever is left.
	run, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	for _, u := range us {
		adm.SetReady(u.name, "starting")
	}
	if err := startAll(run, us, grace, func(name string) { adm.SetReady(name, "") }, log); err != nil {
		return err
	}
	log.Info("airlock started", "config", describeConfig(cfgPath))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var changed <-chan struct{} // nil (never ready) without a file to watch
	if cfgPath != "" && watch > 0 {
		changed = watchFile(ctx, cfgPath, watch)
	}
	failed := failures(run, us)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "grace", grace.String())
			break loop
		case err := <-failed:
			runErr = err
			break loop
		case <-hup:
			reload(cfgPath, cfg, log, level, us, cw)
		case _, ok := <-changed:
			if !ok {
				changed = nil
				continue
			}
			log.Info("config file changed; reloading", "config", describeConfig(cfgPath))
			reload(cfgPath, cfg, log, level, us, cw)
		}
	}
	adm.SetReady("airlock", "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	shutdownAll(sctx, us, log)
	return runErr
}

// buildUnits constructs the components the config enables, in start order
// (the cluster first: the others coordinate through it; the cache's jobs
// before the registry they serve, DNS before the gateway that resolves
// through it, admin last), without binding anything.
func buildUnits(cfg *config.File, cw *clusterWatch, adm *admin.Server, log *slog.Logger, reg prometheus.Registerer, hits *policy.Hits, con *console) ([]unit, error) {
	us := []unit{{name: "cluster", c: cw}}
	if cfg.Registry.Listen != "" {
		rc := cfg.Registry.Config
		slg := log.With("component", "storage")
		bs, err := openStorage(context.Background(), rc.Storage,
			blobstore.Options{UploadTTL: rc.EffectiveUploadTTL(), Logger: log.With("component", "blobstore")},
			newStorageMetrics(reg).observe, slg)
		if err != nil {
			return nil, err
		}
		us = append(us, unit{name: "storage", c: newStorageWatch(bs, adm, slg)})
		store, resolver, inventory, jobs, err := registryStore(&cfg.Registry.Cache, bs, cw, log, reg, con)
		if err != nil {
			return nil, err
		}
		if inventory != nil {
			adm.Handle("GET /cache", inventory)
		}
		if jobs != nil {
			us = append(us, unit{name: "cache", c: jobs})
		}
		regSrv, err := registry.New(&rc, registry.Deps{
			Store:     store,
			Resolver:  resolver,
			Logger:    log.With("component", "registry"),
			Metrics:   registry.NewMetrics(reg),
			Purge:     bs.PurgeUploads,
			Singleton: cw.cl.RunSingleton,
			Redirect:  redirector(rc.Storage, bs),
			PeerAuth:  peerAuth(cw),
		})
		if err != nil {
			return nil, err
		}
		us = append(us, unit{name: "registry", c: regSrv, reload: func(next *nextConfig) error {
			return regSrv.Reload(&next.Registry.Config)
		}})
		if w := cfg.Registry.Cache.Warm; w.Every > 0 {
			job, err := newWarmJob(w, regSrv.InternalPullHandler("scheduled-warm"), cw, log.With("component", "warm"), reg)
			if err != nil {
				return nil, err
			}
			us = append(us, unit{name: "cache warm", c: job})
		}
	}

	gateway := cfg.Gateway.ProxyListen != "" || cfg.Gateway.TransparentListen != "" || cfg.Gateway.L4Listen != ""
	var pol *policy.Policy
	if gateway || cfg.DNS.Listen != "" {
		var err error
		if pol, err = compilePolicy(cfg, log); err != nil {
			return nil, err
		}
		con.setPolicy(cfg.Policy, pol)
	}

	var dns *dnsserver.Server
	if cfg.DNS.Listen != "" {
		var err error
		dns, err = dnsserver.New(cfg.DNS, dnsserver.Deps{
			Logger: log.With("component", "dns"), Registerer: reg, Policy: pol, Hits: hits,
			AllowedInternalRanges: cfg.Gateway.AllowedInternalRanges.Prefixes(), AllowIPv6: cfg.Gateway.AllowIPv6,
		})
		if err != nil {
			return nil, err
		}
		us = append(us, unit{name: "dns", c: dns, reload: func(next *nextConfig) error {
			p, err := next.policy()
			if err != nil {
				return err
			}
			dns.SetPolicy(p)
			return nil
		}})
		if redisConfigured(cfg) {
			// Addresses this replica's DNS answered are published to Redis;
			// a flow another replica's gateway would deny is looked up there.
			sh := dns.ShareObservations(cw.cl, dnsserver.ShareDeps{Logger: log.With("component", "dns-share"), Registerer: reg})
			us = append(us, unit{name: "dns-share", c: sh})
		}
	}

	if gateway {
		deps := egress.Deps{Policy: pol, Logger: log.With("component", "gateway"), Metrics: egress.NewMetrics(reg), Hits: hits}
		if dns != nil {
			// FQDN network rules match exactly what airlock DNS answered,
			// and the gateway resolves names as airlock DNS answers them
			// (private zones, forwarders, cache); otherwise the system
			// resolver (including /etc/hosts).
			deps.Names = dns.Observations()
			deps.Resolver = dns
		}
		gw, err := egress.New(&cfg.Gateway, deps)
		if err != nil {
			return nil, err
		}
		us = append(us, unit{name: "gateway", c: gw, reload: func(next *nextConfig) error {
			p, err := next.policy()
			if err != nil {
				return err
			}
			gw.SetPolicy(p) // new flows get it; established tunnels stay
			return nil
		}})
	}

	if cfg.Admin.Listen != "" {
		con.wire(adm, cfg, hits, log)
		us = append(us, unit{name: "admin", c: adm, reload: con.reload(adm)})
	}
	return us, nil
}

// registryStore is the plain local store, or, with cache rules, the
// pull-through cache in front of it (which also resolves ?ns= requests),
// its inventory handler and its background jobs (not started).
func registryStore(cc *cache.Config, bs *blobstore.Store, cw *clusterWatch, log *slog.Logger, reg prometheus.Registerer, con *console) (storage.Store, registry.Resolver, http.Handler, *cache.Jobs, error) {
	local := registry.NewLocalStore(bs)
	if len(cc.CacheRules) == 0 {
		return local, nil, nil, nil, nil
	}
	creds, err := cc.Credentials(os.LookupEnv)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("registry.credentialSets: %w", err)
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
		return nil, nil, nil, nil, fmt.Errorf("registry.upstreams: %w", err)
	}
	cs, err := cache.New(cc, cache.Deps{Local: local, Blobs: bs, Upstream: cache.FromClient(up), Logger: log.With("component", "cache"), Registry: reg,
		Cluster: cw.cl})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	con.setCache(cs, up)
	return cs, cs, cs.InventoryHandler(), cs.Jobs(), nil
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

// reload applies a re-read config file to every unit that reloads; on any
// error the running config stays (of that unit and the ones after it).
func reload(cfgPath string, running *config.File, log *slog.Logger, level *slog.LevelVar, us []unit, cw *clusterWatch) {
	next, err := config.Load(cfgPath)
	if err != nil {
		log.Error("reload: config invalid, keeping the running config", "config", describeConfig(cfgPath), "err", err.Error())
		return
	}
	if next.Registry.Listen != running.Registry.Listen || next.Registry.Storage != running.Registry.Storage || next.Admin.Listen != running.Admin.Listen {
		log.Warn("reload: listen addresses and registry.storage change only on restart")
	}
	if !reflect.DeepEqual(next.Cluster, running.Cluster) {
		log.Warn("reload: the cluster section changes only on restart")
	}
	if !reloadAll(us, &nextConfig{File: next, log: log}, log) {
		return
	}
	cw.setVersions(next)
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

// peerAuth checks other replicas' requests (their cache fills stream from
// this one) when cluster.advertise is set; nil otherwise.
func peerAuth(cw *clusterWatch) func(context.Context, string) bool {
	if cw == nil || cw.cl == nil || cw.cl.Advertise() == "" {
		return nil
	}
	return cw.cl.CheckPeerToken
}
