package deploy

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/config"
)

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File        string `yaml:"file"`
		Environment string `yaml:"environment"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Secrets     []string          `yaml:"secrets"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Command     any               `yaml:"command"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return c
}

// pinnedImage is name:tag with a tag that names a release: not latest, not
// a moving major alone.
var pinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+:v?\d+\.\d+\.\d+[A-Za-z0-9._-]*$`)

// TestComposeReferences checks every reference of docker-compose.yml that
// does not need Docker to resolve.
func TestComposeReferences(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t)
	envNames := configEnvNames()
	hostPorts := map[string]string{}
	var shrikes []string
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		where := "services." + name
		switch {
		case s.Build != nil:
			ctx := filepath.Join(root, s.Build.Context)
			if fi, err := os.Stat(ctx); err != nil || !fi.IsDir() {
				t.Errorf("%s: build context %q is not a folder of the repository", where, s.Build.Context)
			}
			df := cmp.Or(s.Build.Dockerfile, "Dockerfile")
			if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
				t.Errorf("%s: Dockerfile %q: %v", where, df, err)
			}
			if strings.Contains(s.Image, ":latest") || s.Image == "" {
				t.Errorf("%s: a built image needs a local name and tag, not %q", where, s.Image)
			}
		case !pinnedImage.MatchString(s.Image):
			t.Errorf("%s: image %q is not pinned to a release (name:X.Y.Z)", where, s.Image)
		}
		if s.Build != nil && s.Build.Context == "." {
			shrikes = append(shrikes, name)
		}

		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s: named volume %q is not declared under volumes", where, src)
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("%s: mounts %q, which the repository does not have", where, src)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("%s: secret %q is not declared under secrets", where, sec)
			}
		}
		for _, dep := range dependsOn(t, where, s.DependsOn) {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s: depends_on %q, no such service", where, dep)
			}
		}
		for _, p := range s.Ports {
			host, container, err := splitPort(p)
			if err != nil {
				t.Errorf("%s: port %q: %v", where, p, err)
				continue
			}
			if other, ok := hostPorts[host]; ok {
				t.Errorf("%s: host port %s is published by %s too", where, host, other)
			}
			hostPorts[host] = name
			_ = container
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "SHRIKE_") && !slices.Contains(envNames, indexless(k)) {
				t.Errorf("%s: %s is not a configuration variable of shrike that the environment may set (secrets come from files)", where, k)
			}
		}
	}
	for name, sec := range c.Secrets {
		if sec.File != "" {
			if _, err := os.Stat(filepath.Join(root, sec.File)); err != nil {
				t.Errorf("secrets.%s: file %q: %v", name, sec.File, err)
			}
		}
		if sec.File == "" && sec.Environment == "" {
			t.Errorf("secrets.%s: neither file nor environment", name)
		}
	}
	if len(shrikes) < 2 {
		t.Errorf("shrike services %v, want two instances built from the Dockerfile", shrikes)
	}
}

// TestComposeShrikeConfiguration loads the image's configuration file and
// applies each shrike service's SHRIKE_* variables with serve's own
// config.ApplyEnv, then validates: the compose setup must be one
// that serve accepts, with instances that share Kafka, Redis and the
// consumer group.
func TestComposeShrikeConfiguration(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t)
	image, err := config.LoadConfigFile(filepath.Join(root, "deploy", "docker", "shrike.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The image's file alone listens beyond loopback without tokens: serve
	// refuses that, and says so.
	if err := image.Validate(); err == nil || !strings.Contains(err.Error(), "configure api.tokens") {
		t.Errorf("the image's file without tokens validated as %v; want the api.tokens error", err)
	}
	var groups, brokers, redis []string
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		if s.Build == nil {
			continue
		}
		cfg, err := config.LoadConfigFile(filepath.Join(root, "deploy", "docker", "shrike.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var environ []string
		for k, v := range s.Environment {
			environ = append(environ, k+"="+v)
		}
		if err := cfg.ApplyEnv(environ); err != nil {
			t.Errorf("services.%s: %v", name, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("services.%s: the configuration does not validate:\n%v", name, err)
		}
		for _, tok := range cfg.API.Tokens {
			sec := strings.TrimPrefix(tok.TokenFile, "/run/secrets/")
			if !slices.Contains(s.Secrets, sec) {
				t.Errorf("services.%s: token %s reads %s, not a secret the service mounts (%v)", name, tok.Name, tok.TokenFile, s.Secrets)
			}
		}
		if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasSuffix(strings.TrimSuffix(v, ":ro"), ":"+cfg.Rules.Dir) }) {
			t.Errorf("services.%s: nothing is mounted at rules.dir %s: %v", name, cfg.Rules.Dir, s.Volumes)
		}
		for _, l := range []string{cfg.HTTP.Listen, cfg.GRPC.Listen, cfg.Admin.Listen} {
			_, port, _ := strings.Cut(l, ":")
			if !slices.ContainsFunc(s.Ports, func(p string) bool { _, c, _ := splitPort(p); return c == port }) {
				t.Errorf("services.%s: the listener %s is not published (%v)", name, l, s.Ports)
			}
		}
		groups = append(groups, cfg.Kafka.Group)
		brokers = append(brokers, strings.Join(cfg.Kafka.Brokers, ","))
		redis = append(redis, strings.Join(cfg.Redis.Addrs, ","))
		for _, addr := range append(slices.Clone(cfg.Kafka.Brokers), cfg.Redis.Addrs...) {
			host, _, _ := strings.Cut(addr, ":")
			if _, ok := c.Services[host]; !ok {
				t.Errorf("services.%s: %s is not a service of the compose file", name, addr)
			}
		}
	}
	for what, v := range map[string][]string{"consumer group": groups, "brokers": brokers, "Redis": redis} {
		if len(slices.Compact(slices.Clone(v))) != 1 || v[0] == "" {
			t.Errorf("the instances' %s %q: want one, shared", what, v)
		}
	}
	if want := "prometheus.yml"; !strings.Contains(strings.Join(c.Services["prometheus"].Volumes, " "), want) {
		t.Errorf("prometheus mounts %v, want its %s", c.Services["prometheus"].Volumes, want)
	}
}

// TestPrometheusScrapesEveryInstance checks that the Prometheus of the
// compose setup scrapes each shrike service's admin listener under the job
// the alerting rules expect, and loads those rules.
func TestPrometheusScrapesEveryInstance(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName == "shrike" {
			for _, s := range sc.StaticConfigs {
				targets = append(targets, s.Targets...)
			}
		}
	}
	image, err := config.LoadConfigFile(filepath.Join(root, "deploy", "docker", "shrike.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, adminPort, _ := strings.Cut(image.Admin.Listen, ":")
	var want []string
	for name, s := range c.Services {
		if s.Build != nil {
			want = append(want, name+":"+adminPort)
		}
	}
	slices.Sort(want)
	slices.Sort(targets)
	if !slices.Equal(targets, want) {
		t.Errorf("job shrike scrapes %v, want the admin listener of every instance %v", targets, want)
	}
	mounts := strings.Join(c.Services["prometheus"].Volumes, " ")
	for _, rf := range prom.RuleFiles {
		if !strings.Contains(mounts, ":"+rf) {
			t.Errorf("rule file %s is not mounted into prometheus (%s)", rf, mounts)
		}
	}
	if len(prom.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no alerting rules")
	}
}

// configEnvNames lists the variable of every configuration field that
// may come from the environment, as serve reads them (config.EnvVars), an
// item's index written as N (SHRIKE_API_TOKENS_N_NAME). Secret fields are
// left out: serve refuses them from the environment.
func configEnvNames() []string {
	var out []string
	for _, v := range config.EnvVars() {
		if !v.Secret {
			out = append(out, strings.ReplaceAll(v.Name, "<N>", "N"))
		}
	}
	return out
}

// indexless writes the index of a list item's variable as N
// (SHRIKE_API_TOKENS_0_NAME is SHRIKE_API_TOKENS_N_NAME).
func indexless(name string) string {
	return regexp.MustCompile(`_\d+_`).ReplaceAllString(name, "_N_")
}

// splitPort splits a compose port "[IP:]HOST:CONTAINER" into the host
// binding (IP:HOST) and the container port.
func splitPort(p string) (host, container string, err error) {
	p = strings.TrimSuffix(p, "/tcp")
	i := strings.LastIndex(p, ":")
	if i < 0 {
		return "", "", fmt.Errorf("no host port: publish on an explicit host port")
	}
	host, container = p[:i], p[i+1:]
	if _, err := strconv.Atoi(container); err != nil {
		return "", "", fmt.Errorf("container port %q is not a number", container)
	}
	return host, container, nil
}

// dependsOn reads depends_on in either of its forms: a list of services or
// a mapping of service to condition.
func dependsOn(t *testing.T, where string, n yaml.Node) []string {
	t.Helper()
	var out []string
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		if err := n.Decode(&out); err != nil {
			t.Errorf("%s.depends_on: %v", where, err)
		}
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			out = append(out, n.Content[i].Value)
		}
	default:
		t.Errorf("%s.depends_on: neither a list nor a mapping", where)
	}
	return out
}
