package chartcheck

import (
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/tokencheck"
)

// chartDir is the chart under test, from this package's folder.
const chartDir = "../helm/shrike"

const (
	releaseName = "fraud"
	namespace   = "cep"
)

// strictDecoder decodes manifests into the types of client-go's scheme
// (every built-in API) and prometheus-operator's monitoring/v1, failing on
// unknown and duplicate fields.
var strictDecoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientscheme.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// rendered is one rendering of the chart: its objects by kind and name.
type rendered struct {
	objects map[string]runtime.Object // "Kind/name"
}

func (r rendered) kinds() []string {
	return slices.Sorted(maps.Keys(r.objects))
}

func get[T runtime.Object](t *testing.T, r rendered, key string) T {
	t.Helper()
	o, ok := r.objects[key]
	if !ok {
		t.Fatalf("no %s among the rendered objects %v", key, r.kinds())
	}
	v, ok := o.(T)
	if !ok {
		t.Fatalf("%s decoded as %T", key, o)
	}
	return v
}

// render renders the chart with vals over its values.yaml, lints it, and
// decodes every manifest strictly.
func render(t *testing.T, vals map[string]any) rendered {
	t.Helper()
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	caps := *common.DefaultCapabilities
	kube, err := common.ParseKubeVersion("v1.34.0")
	if err != nil {
		t.Fatal(err)
	}
	caps.KubeVersion = *kube
	top, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: releaseName, Namespace: namespace, IsInstall: true, Revision: 1}, &caps)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(ch, top)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	linter := lint.RunAll(chartDir, vals, namespace, lint.WithKubeVersion(kube))
	for _, m := range linter.Messages {
		if m.Severity > support.InfoSev {
			t.Errorf("helm lint: %s", m)
		}
	}

	r := rendered{objects: map[string]runtime.Object{}}
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if filepath.Ext(name) != ".yaml" {
			continue // NOTES.txt, _helpers.tpl
		}
		for i, doc := range strings.Split(files[name], "\n---") {
			if strings.TrimSpace(doc) == "" || onlyComments(doc) {
				continue
			}
			obj, gvk, err := strictDecoder.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s, document %d: %v\n%s", name, i+1, err, doc)
			}
			meta, err := metaOf(obj)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			key := gvk.Kind + "/" + meta
			if _, dup := r.objects[key]; dup {
				t.Fatalf("%s rendered twice", key)
			}
			r.objects[key] = obj
		}
	}
	return r
}

func onlyComments(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func metaOf(obj runtime.Object) (string, error) {
	m, ok := obj.(interface{ GetName() string })
	if !ok {
		return "", fmt.Errorf("%T has no name", obj)
	}
	if m.GetName() == "" {
		return "", fmt.Errorf("%T without a name", obj)
	}
	return m.GetName(), nil
}

// values parses a YAML values document.
func values(t *testing.T, src string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// production is a values file with real Kafka and Redis.
const production = `
config:
  kafka: {brokers: [kafka-0.kafka:9092, kafka-1.kafka:9092]}
  redis: {addrs: [redis:6379]}
`

func TestChartRenders(t *testing.T) {
	payments, err := os.ReadFile("../../rulesets/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		vals  string
		want  []string // the objects rendered
		check func(t *testing.T, r rendered)
	}{
		{
			name: "default values",
			want: []string{"ConfigMap/fraud-shrike", "ConfigMap/fraud-shrike-rulesets", "Deployment/fraud-shrike", "PodDisruptionBudget/fraud-shrike", "Secret/fraud-shrike", "Service/fraud-shrike", "ServiceAccount/fraud-shrike"},
			check: func(t *testing.T, r rendered) {
				d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
				if *d.Spec.Replicas != 2 {
					t.Errorf("replicas %d, want the default 2", *d.Spec.Replicas)
				}
				cfg := shrikeConfig(t, r)
				if len(cfg.Kafka.Brokers) != 0 || len(cfg.Redis.Addrs) != 0 {
					t.Errorf("default brokers %v, redis %v; want none", cfg.Kafka.Brokers, cfg.Redis.Addrs)
				}
			},
		},
		{
			name: "three replicas on real Kafka and Redis, with rulesets",
			vals: production + "replicaCount: 3\nrulesets:\n  payments.yaml: |\n" + indent(string(payments), "    "),
			want: []string{"ConfigMap/fraud-shrike", "ConfigMap/fraud-shrike-rulesets", "Deployment/fraud-shrike", "PodDisruptionBudget/fraud-shrike", "Secret/fraud-shrike", "Service/fraud-shrike", "ServiceAccount/fraud-shrike"},
			check: func(t *testing.T, r rendered) {
				d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
				if *d.Spec.Replicas != 3 {
					t.Errorf("replicas %d, want 3", *d.Spec.Replicas)
				}
				pdb := get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget/fraud-shrike")
				if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
				}
				if !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
					t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
				}
				cfg := shrikeConfig(t, r)
				if want := []string{"kafka-0.kafka:9092", "kafka-1.kafka:9092"}; !slices.Equal(cfg.Kafka.Brokers, want) {
					t.Errorf("kafka.brokers %v, want %v", cfg.Kafka.Brokers, want)
				}
				if cfg.Kafka.Group != "shrike" {
					t.Errorf("kafka.group %q, want the default shrike (the replicas share it)", cfg.Kafka.Group)
				}
				rs := get[*corev1.ConfigMap](t, r, "ConfigMap/fraud-shrike-rulesets")
				if rs.Data["payments.yaml"] != string(payments) {
					t.Errorf("the rulesets ConfigMap changed payments.yaml:\n%s", rs.Data["payments.yaml"])
				}
			},
		},
		{
			name: "ServiceMonitor on",
			vals: production + "serviceMonitor: {enabled: true, interval: 15s, labels: {release: prom}}\n",
			want: []string{"ConfigMap/fraud-shrike", "ConfigMap/fraud-shrike-rulesets", "Deployment/fraud-shrike", "PodDisruptionBudget/fraud-shrike", "Secret/fraud-shrike", "Service/fraud-shrike", "ServiceAccount/fraud-shrike", "ServiceMonitor/fraud-shrike"},
			check: func(t *testing.T, r rendered) {
				sm := get[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor/fraud-shrike")
				svc := get[*corev1.Service](t, r, "Service/fraud-shrike")
				if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
					t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", sm.Spec.Selector.MatchLabels, svc.Labels)
				}
				if sm.Labels["release"] != "prom" {
					t.Errorf("ServiceMonitor labels %v, want release=prom", sm.Labels)
				}
				if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Interval != "15s" {
					t.Errorf("ServiceMonitor endpoints %+v, want /metrics on the admin port every 15s", sm.Spec.Endpoints)
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "admin" }) {
					t.Errorf("the Service has no admin port for the ServiceMonitor: %+v", svc.Spec.Ports)
				}
			},
		},
		{
			name: "an existing Secret and rulesets ConfigMap, one replica",
			vals: production + `replicaCount: 1
existingRulesetsConfigMap: my-rulesets
auth:
  existingSecret: shrike-credentials
  tokens:
    - {name: ci, scopes: [rules:read, rules:write]}
    - {name: alerts-reader, scopes: [alerts:read]}
`,
			// No Secret, no rulesets ConfigMap, and no PodDisruptionBudget for one replica.
			want: []string{"ConfigMap/fraud-shrike", "Deployment/fraud-shrike", "Service/fraud-shrike", "ServiceAccount/fraud-shrike"},
			check: func(t *testing.T, r rendered) {
				d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
				vols := volumes(d)
				if s := vols["secrets"].Secret; s == nil || s.SecretName != "shrike-credentials" {
					t.Errorf("secrets volume %+v, want the Secret shrike-credentials", vols["secrets"])
				} else if got := keys(s.Items); !slices.Equal(got, []string{"ci", "alerts-reader"}) {
					t.Errorf("secret files %v, want ci and alerts-reader", got)
				}
				if cm := vols["rulesets"].ConfigMap; cm == nil || cm.Name != "my-rulesets" {
					t.Errorf("rulesets volume %+v, want the ConfigMap my-rulesets", vols["rulesets"])
				}
				if env := d.Spec.Template.Spec.Containers[0].Env; slices.ContainsFunc(env, func(e corev1.EnvVar) bool { return strings.HasPrefix(e.Name, "SHRIKE_REDIS_PASSWORD") }) {
					t.Errorf("env %+v: a Redis password file without existingSecretRedisPasswordKey", env)
				}
				cfg := shrikeConfig(t, r)
				var files []string
				for _, tok := range cfg.API.Tokens {
					files = append(files, tok.TokenFile)
				}
				if want := []string{"/etc/shrike/secrets/ci", "/etc/shrike/secrets/alerts-reader"}; !slices.Equal(files, want) {
					t.Errorf("token files %v, want %v", files, want)
				}
			},
		},
		{
			name: "an existing Secret with the Redis password",
			vals: production + "auth: {existingSecret: creds, existingSecretRedisPasswordKey: redis}\n",
			want: []string{"ConfigMap/fraud-shrike", "ConfigMap/fraud-shrike-rulesets", "Deployment/fraud-shrike", "PodDisruptionBudget/fraud-shrike", "Service/fraud-shrike", "ServiceAccount/fraud-shrike"},
			check: func(t *testing.T, r rendered) {
				d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
				items := volumes(d)["secrets"].Secret.Items
				if !slices.Contains(items, corev1.KeyToPath{Key: "redis", Path: "redis-password"}) {
					t.Errorf("secret files %+v, want the key redis as redis-password", items)
				}
			},
		},
		{
			name: "a Redis password and a given token",
			vals: production + `auth:
  redisPassword: s3cret-redis
  tokens:
    - {name: ops, scopes: [rules:read], token: 3f9c1a7e52b84d06a1e9c7b25d4f8e63}
`,
			want: []string{"ConfigMap/fraud-shrike", "ConfigMap/fraud-shrike-rulesets", "Deployment/fraud-shrike", "PodDisruptionBudget/fraud-shrike", "Secret/fraud-shrike", "Service/fraud-shrike", "ServiceAccount/fraud-shrike"},
			check: func(t *testing.T, r rendered) {
				s := get[*corev1.Secret](t, r, "Secret/fraud-shrike")
				if string(s.Data["ops"]) != "3f9c1a7e52b84d06a1e9c7b25d4f8e63" || string(s.Data["redis-password"]) != "s3cret-redis" {
					t.Errorf("Secret data %q, want the token and the Redis password", s.Data)
				}
				d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
				if got := keys(volumes(d)["secrets"].Secret.Items); !slices.Equal(got, []string{"ops", "redis-password"}) {
					t.Errorf("secret files %v, want ops and redis-password", got)
				}
				env := d.Spec.Template.Spec.Containers[0].Env
				if !slices.Contains(env, corev1.EnvVar{Name: "SHRIKE_REDIS_PASSWORD_FILE", Value: "/etc/shrike/secrets/redis-password"}) {
					t.Errorf("env %+v: want SHRIKE_REDIS_PASSWORD_FILE naming the mounted file", env)
				}
				if cfg := shrikeConfig(t, r); cfg.ApplyEnv([]string{"SHRIKE_REDIS_PASSWORD_FILE=/etc/shrike/secrets/redis-password"}) != nil || cfg.Redis.PasswordFile != "/etc/shrike/secrets/redis-password" {
					t.Errorf("SHRIKE_REDIS_PASSWORD_FILE does not set redis.password_file")
				}
				cm := get[*corev1.ConfigMap](t, r, "ConfigMap/fraud-shrike")
				for _, secret := range []string{"s3cret-redis", "3f9c1a7e52b84d06a1e9c7b25d4f8e63"} {
					if strings.Contains(cm.Data["shrike.yaml"], secret) {
						t.Errorf("the configuration ConfigMap holds the secret %q", secret)
					}
				}
			},
		},
		{
			name: "Kafka over SASL and a webhook, their secrets as files",
			vals: `config:
  kafka:
    brokers: [kafka-0.kafka:9092, kafka-1.kafka:9092]
    sasl: {mechanism: scram-sha-512, username: shrike}
  redis: {addrs: [redis:6379]}
  alerts:
    webhooks:
      - {name: soc, url: "https://cases.example/hooks/shrike", secret_file: /etc/shrike/secrets/soc-webhook}
auth:
  kafkaSaslPassword: s3cret-kafka
  files:
    soc-webhook: 7c1e9a3f5b2d8e4a6c0f9b1d3e5a7c2f
`,
			want: []string{"ConfigMap/fraud-shrike", "ConfigMap/fraud-shrike-rulesets", "Deployment/fraud-shrike", "PodDisruptionBudget/fraud-shrike", "Secret/fraud-shrike", "Service/fraud-shrike", "ServiceAccount/fraud-shrike"},
			check: func(t *testing.T, r rendered) {
				s := get[*corev1.Secret](t, r, "Secret/fraud-shrike")
				if string(s.Data["kafka-sasl-password"]) != "s3cret-kafka" || string(s.Data["soc-webhook"]) != "7c1e9a3f5b2d8e4a6c0f9b1d3e5a7c2f" {
					t.Errorf("Secret data %q, want the SASL password and the webhook's secret", s.Data)
				}
				d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
				if got := keys(volumes(d)["secrets"].Secret.Items); !slices.Equal(got, []string{"admin", "kafka-sasl-password", "soc-webhook"}) {
					t.Errorf("secret files %v, want admin, kafka-sasl-password and soc-webhook", got)
				}
				cfg := shrikeConfig(t, r)
				if cfg.Kafka.SASL.PasswordFile != "/etc/shrike/secrets/kafka-sasl-password" || cfg.Kafka.SASL.Username != "shrike" {
					t.Errorf("kafka.sasl %+v, want the user shrike and the mounted password file", cfg.Kafka.SASL)
				}
				if len(cfg.Alerts.Webhooks) != 1 || cfg.Alerts.Webhooks[0].SecretFile != "/etc/shrike/secrets/soc-webhook" {
					t.Errorf("webhooks %+v, want soc with its secret file in the secrets mount", cfg.Alerts.Webhooks)
				}
				cm := get[*corev1.ConfigMap](t, r, "ConfigMap/fraud-shrike")
				for _, secret := range []string{"s3cret-kafka", "7c1e9a3f5b2d8e4a6c0f9b1d3e5a7c2f"} {
					if strings.Contains(cm.Data["shrike.yaml"], secret) {
						t.Errorf("the configuration ConfigMap holds the secret %q", secret)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := map[string]any{}
			if tt.vals != "" {
				vals = values(t, tt.vals)
			}
			r := render(t, vals)
			if got := r.kinds(); !slices.Equal(got, tt.want) {
				t.Errorf("rendered %v, want %v", got, tt.want)
			}
			checkDeployment(t, r)
			checkSecrets(t, r)
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// checkDeployment holds every rendering to what the chart promises: a
// hardened pod, probes on the admin listener, every mount backed by a
// volume, and secrets never on the command line.
func checkDeployment(t *testing.T, r rendered) {
	t.Helper()
	d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
	pod := d.Spec.Template.Spec
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("selector %v does not select the pod template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want non-root, a numeric user other than 0, seccomp RuntimeDefault", psc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("the service account token is mounted; shrike does not talk to Kubernetes")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := map[string]int32{"http": 8080, "grpc": 9090, "admin": 8079}; !maps.Equal(ports, want) {
		t.Errorf("container ports %v, want %v", ports, want)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe %+v, want GET %s on the admin port", p.name, p.probe, p.path)
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources %+v: want a memory limit and a CPU request", c.Resources)
	}
	if want := []string{"serve", "--config", "/etc/shrike/config/shrike.yaml"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	vols := volumes(d)
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("volume mount %s has no volume", m.Name)
		}
		if m.Name != "tmp" && !m.ReadOnly {
			t.Errorf("volume mount %s at %s is writable", m.Name, m.MountPath)
		}
	}
	// The configuration serve runs with: the file, then the container's
	// SHRIKE_* variables, as serve applies them.
	cfg := shrikeConfig(t, r)
	var environ []string
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, config.EnvPrefix) {
			continue
		}
		if e.ValueFrom != nil {
			t.Errorf("env %s is taken from %+v: shrike's variables are plain values (secrets come from files)", e.Name, e.ValueFrom)
			continue
		}
		environ = append(environ, e.Name+"="+e.Value)
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		t.Errorf("the container's SHRIKE_* variables: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the configuration with the container's variables does not validate: %v", err)
	}
	if cfg.Redis.PasswordFile != "" && filepath.Dir(cfg.Redis.PasswordFile) != mountPath(c, "secrets") {
		t.Errorf("redis.password_file %s is not in the secrets mount %s", cfg.Redis.PasswordFile, mountPath(c, "secrets"))
	}
	if cfg.Rules.Dir != mountPath(c, "rulesets") {
		t.Errorf("rules.dir %q is not where the rulesets are mounted (%q)", cfg.Rules.Dir, mountPath(c, "rulesets"))
	}
	for _, tok := range cfg.API.Tokens {
		if filepath.Dir(tok.TokenFile) != mountPath(c, "secrets") {
			t.Errorf("token %s: token_file %s is not in the secrets mount %s", tok.Name, tok.TokenFile, mountPath(c, "secrets"))
		}
	}
	for name, port := range map[string]string{"http": cfg.HTTP.Listen, "grpc": cfg.GRPC.Listen, "admin": cfg.Admin.Listen} {
		if want := fmt.Sprintf("0.0.0.0:%d", ports[name]); port != want {
			t.Errorf("the %s listener is on %q, want %q (the container port)", name, port, want)
		}
	}
	svc := get[*corev1.Service](t, r, "Service/fraud-shrike")
	if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("the Service selects %v, not the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	for _, p := range svc.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %s, which the container does not have", p.Name, p.TargetPort.String())
		}
	}
}

// checkSecrets fails when a secret reaches the pod other than as a mounted
// file, or when a token the chart
// generated is one shrike would refuse.
func checkSecrets(t *testing.T, r rendered) {
	t.Helper()
	d := get[*appsv1.Deployment](t, r, "Deployment/fraud-shrike")
	c := d.Spec.Template.Spec.Containers[0]
	// shrike takes secrets from files only (an environment variable holding
	// a secret is shown by container tooling): a variable about one names
	// a file of the secrets mount.
	for _, e := range c.Env {
		name := strings.ToUpper(e.Name)
		if !strings.Contains(name, "PASSWORD") && !strings.Contains(name, "TOKEN") {
			continue
		}
		if !strings.HasSuffix(name, "_FILE") || e.ValueFrom != nil || filepath.Dir(e.Value) != mountPath(c, "secrets") {
			t.Errorf("env %s=%q: a secret's variable must name a file of the secrets mount %s", e.Name, e.Value, mountPath(c, "secrets"))
		}
	}
	s, ok := r.objects["Secret/fraud-shrike"].(*corev1.Secret)
	if !ok {
		return // an existing Secret
	}
	for name, v := range s.Data {
		for _, arg := range append(slices.Clone(c.Command), c.Args...) {
			if strings.Contains(arg, string(v)) {
				t.Errorf("the secret %s is on the command line: %q", name, arg)
			}
		}
		if !slices.ContainsFunc(shrikeConfig(t, r).API.Tokens, func(tok config.TokenConfig) bool { return tok.Name == name }) {
			continue // a password or another secret file, not an API token
		}
		if err := tokencheck.Check(string(v)); err != nil {
			t.Errorf("token %s (%s): shrike would refuse it: %v", name, base64.StdEncoding.EncodeToString(v), err)
		}
	}
}

// shrikeConfig loads the rendered configuration file with shrike's own
// loader, which rejects unknown fields, and validates it.
func shrikeConfig(t *testing.T, r rendered) config.Config {
	t.Helper()
	cm := get[*corev1.ConfigMap](t, r, "ConfigMap/fraud-shrike")
	src, ok := cm.Data["shrike.yaml"]
	if !ok {
		t.Fatalf("the ConfigMap has no shrike.yaml: %v", slices.Sorted(maps.Keys(cm.Data)))
	}
	cfg, err := config.LoadConfig("/etc/shrike/config/shrike.yaml", []byte(src))
	if err != nil {
		t.Fatalf("shrike.yaml does not load:\n%v\n%s", err, src)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("shrike.yaml does not validate:\n%v\n%s", err, src)
	}
	return cfg
}

func volumes(d *appsv1.Deployment) map[string]corev1.Volume {
	out := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		out[v.Name] = v
	}
	return out
}

func mountPath(c corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

func keys(items []corev1.KeyToPath) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Key)
	}
	return out
}

// selects reports whether every label of selector is among labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestStrictDecoderRefusesUnknownFields makes sure that the decoder the
// tests rely on fails a misspelt field rather than dropping it.
func TestStrictDecoderRefusesUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {prots: []}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1, replicas: 2}\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoints: [{port: admin, pth: /metrics}]}\n",
	} {
		if _, _, err := strictDecoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("decoded without error:\n%s", doc)
		}
	}
}

// TestChartRefusesBadValues checks the chart's own errors and its values
// schema (values.schema.json), which Helm applies before rendering.
func TestChartRefusesBadValues(t *testing.T) {
	tests := []struct{ name, vals, want string }{
		{"no token", "auth: {tokens: []}\n", "auth.tokens"},
		{"a token name that is no file name", "auth: {tokens: [{name: ../x, scopes: [rules:read]}]}\n", "must be letters, digits"},
		{"a misspelt value", "replicas: 3\n", "replicas"},
		{"an unknown scope", "auth: {tokens: [{name: ci, scopes: [rules:admin]}]}\n", "scopes"},
		{"a replica count that is no number", "replicaCount: three\n", "replicaCount"},
		{"a secret file name that is no file name", "auth: {files: {../soc: x}}\n", "must be letters, digits"},
		{"a secret file named as a password", "auth: {files: {kafka-sasl-password: x}}\n", "taken by a password or a token"},
		{"a secret file named as a token", "auth: {files: {admin: x}}\n", "taken by a password or a token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := loader.LoadDir(chartDir)
			if err != nil {
				t.Fatal(err)
			}
			top, err := util.ToRenderValues(ch, values(t, tt.vals), common.ReleaseOptions{Name: releaseName, Namespace: namespace}, nil)
			if err == nil {
				_, err = engine.Render(ch, top)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("render: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
