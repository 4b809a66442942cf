package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const namespace = "inference-x"

// manifests is one overlay as kustomize builds it, decoded.
type manifests struct {
	namespaces   []corev1.Namespace
	configMaps   []corev1.ConfigMap
	services     []corev1.Service
	pvcs         []corev1.PersistentVolumeClaim
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	pdbs         []policyv1.PodDisruptionBudget
	policies     []networkingv1.NetworkPolicy
}

// strict decodes JSON into v, failing on fields v's type does not have.
func strict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// build runs krusty over dir and decodes every object strictly.
func build(t *testing.T, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := &manifests{}
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		kind, name := r.GetKind(), r.GetName()
		var derr error
		switch kind {
		case "Namespace":
			var o corev1.Namespace
			derr = strict(b, &o)
			m.namespaces = append(m.namespaces, o)
		case "ConfigMap":
			var o corev1.ConfigMap
			derr = strict(b, &o)
			m.configMaps = append(m.configMaps, o)
		case "Service":
			var o corev1.Service
			derr = strict(b, &o)
			m.services = append(m.services, o)
		case "PersistentVolumeClaim":
			var o corev1.PersistentVolumeClaim
			derr = strict(b, &o)
			m.pvcs = append(m.pvcs, o)
		case "Deployment":
			var o appsv1.Deployment
			derr = strict(b, &o)
			m.deployments = append(m.deployments, o)
		case "StatefulSet":
			var o appsv1.StatefulSet
			derr = strict(b, &o)
			m.statefulSets = append(m.statefulSets, o)
		case "PodDisruptionBudget":
			var o policyv1.PodDisruptionBudget
			derr = strict(b, &o)
			m.pdbs = append(m.pdbs, o)
		case "NetworkPolicy":
			var o networkingv1.NetworkPolicy
			derr = strict(b, &o)
			m.policies = append(m.policies, o)
		default:
			t.Fatalf("%s: unexpected kind %s %s (add it to the test)", dir, kind, name)
		}
		if derr != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", dir, kind, name, derr)
		}
		if kind != "Namespace" && r.GetNamespace() != namespace {
			t.Errorf("%s: %s %s is in namespace %q, want %q", dir, kind, name, r.GetNamespace(), namespace)
		}
	}
	return m
}

// workload is a pod template with where it came from.
type workload struct {
	name     string
	replicas int32
	selector map[string]string
	pod      corev1.PodTemplateSpec
	claims   []string // volumeClaimTemplates
}

func (m *manifests) workloads() []workload {
	var out []workload
	for _, d := range m.deployments {
		out = append(out, workload{name: "Deployment " + d.Name, replicas: replicas(d.Spec.Replicas), selector: d.Spec.Selector.MatchLabels, pod: d.Spec.Template})
	}
	for _, s := range m.statefulSets {
		w := workload{name: "StatefulSet " + s.Name, replicas: replicas(s.Spec.Replicas), selector: s.Spec.Selector.MatchLabels, pod: s.Spec.Template}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		out = append(out, w)
	}
	return out
}

func replicas(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}

func overlays(t *testing.T) []string {
	dirs, err := filepath.Glob("overlays/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays: %v", err)
	}
	return append([]string{"base"}, dirs...)
}

func TestManifests(t *testing.T) {
	flags := binaryFlags(t)
	for _, dir := range overlays(t) {
		t.Run(dir, func(t *testing.T) {
			m := build(t, dir)
			if len(m.namespaces) != 1 || m.namespaces[0].Name != namespace {
				t.Errorf("want the namespace %s", namespace)
			}
			if len(m.deployments) != 1 || len(m.statefulSets) != 1 {
				t.Fatalf("want one coordinator Deployment and one expert node StatefulSet, got %d and %d", len(m.deployments), len(m.statefulSets))
			}
			checkSelectors(t, m)
			checkServices(t, m)
			for _, w := range m.workloads() {
				checkPod(t, m, w, flags)
			}
			checkCluster(t, m)
			checkProperties(t, dir, m)
		})
	}
}

// checkSelectors: workloads select their own pods; PDBs select a workload.
func checkSelectors(t *testing.T, m *manifests) {
	for _, w := range m.workloads() {
		if len(w.selector) == 0 || !labels.SelectorFromSet(w.selector).Matches(labels.Set(w.pod.Labels)) {
			t.Errorf("%s: selector %v does not match its pod labels %v", w.name, w.selector, w.pod.Labels)
		}
	}
	for _, p := range m.pdbs {
		if p.Spec.Selector == nil || len(matching(m, p.Spec.Selector.MatchLabels)) == 0 {
			t.Errorf("PodDisruptionBudget %s selects no workload", p.Name)
		}
	}
	for _, s := range m.statefulSets {
		svc := m.service(s.Spec.ServiceName)
		if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("StatefulSet %s: serviceName %q is not a headless Service", s.Name, s.Spec.ServiceName)
		}
	}
}

func matching(m *manifests, sel map[string]string) []workload {
	var out []workload
	for _, w := range m.workloads() {
		if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func (m *manifests) service(name string) *corev1.Service {
	for i := range m.services {
		if m.services[i].Name == name {
			return &m.services[i]
		}
	}
	return nil
}

// checkServices: every Service selects pods that have each target port
// with the same protocol.
func checkServices(t *testing.T, m *manifests) {
	for _, s := range m.services {
		ws := matching(m, s.Spec.Selector)
		if len(ws) == 0 {
			t.Errorf("Service %s selects no pods", s.Name)
			continue
		}
		for _, p := range s.Spec.Ports {
			for _, w := range ws {
				if !podHasPort(w.pod.Spec, p.TargetPort, p.Protocol) {
					t.Errorf("Service %s port %s: %s has no %s port %s", s.Name, p.Name, w.name, p.Protocol, p.TargetPort.String())
				}
			}
		}
	}
}

func podHasPort(spec corev1.PodSpec, port intstr.IntOrString, proto corev1.Protocol) bool {
	for _, c := range spec.Containers {
		if _, ok := containerPort(c, port, proto); ok {
			return true
		}
	}
	return false
}

func containerPort(c corev1.Container, port intstr.IntOrString, proto corev1.Protocol) (int32, bool) {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, p := range c.Ports {
		pp := p.Protocol
		if pp == "" {
			pp = corev1.ProtocolTCP
		}
		if pp != proto {
			continue
		}
		if port.Type == intstr.String && p.Name == port.StrVal || port.Type == intstr.Int && p.ContainerPort == port.IntVal {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkPod checks one workload's pod: resources, probes, volumes, env
// references, and every container's command line against its binary.
func checkPod(t *testing.T, m *manifests, w workload, flags map[string]map[string]bool) {
	spec := w.pod.Spec
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if v.PersistentVolumeClaim != nil && !slices.ContainsFunc(m.pvcs, func(p corev1.PersistentVolumeClaim) bool { return p.Name == v.PersistentVolumeClaim.ClaimName }) {
			t.Errorf("%s: volume %s claims %s, which is not in the manifests", w.name, v.Name, v.PersistentVolumeClaim.ClaimName)
		}
		if v.ConfigMap != nil && m.configMap(v.ConfigMap.Name) == nil {
			t.Errorf("%s: volume %s uses ConfigMap %s, which is not in the manifests", w.name, v.Name, v.ConfigMap.Name)
		}
	}
	for _, c := range w.claims {
		volumes[c] = true
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for i, c := range all {
		main := i >= len(spec.InitContainers)
		where := w.name + " container " + c.Name
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s: no cpu and memory requests", where)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory limit", where)
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s: mounts unknown volume %s", where, vm.Name)
			}
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef == nil {
				continue
			}
			cm := m.configMap(ef.ConfigMapRef.Name)
			if cm == nil {
				t.Errorf("%s: envFrom ConfigMap %s is not in the manifests", where, ef.ConfigMapRef.Name)
				continue
			}
			for k := range cm.Data {
				env[k] = true
			}
		}
		for _, a := range append(slices.Clone(c.Command), c.Args...) {
			for _, ref := range varRef.FindAllStringSubmatch(a, -1) {
				if !env[ref[1]] {
					t.Errorf("%s: $(%s) is not defined in its environment", where, ref[1])
				}
			}
		}
		if !main {
			checkCommandLine(t, where, c, flags)
			continue
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: needs readiness and liveness probes", where)
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p == nil {
				continue
			}
			switch {
			case p.HTTPGet != nil:
				if _, ok := containerPort(c, p.HTTPGet.Port, corev1.ProtocolTCP); !ok {
					t.Errorf("%s: probe port %s is not a container port", where, p.HTTPGet.Port.String())
				}
			case p.GRPC != nil:
				if _, ok := containerPort(c, intstr.FromInt32(p.GRPC.Port), corev1.ProtocolTCP); !ok {
					t.Errorf("%s: gRPC probe port %d is not a container port", where, p.GRPC.Port)
				}
			}
		}
		checkCommandLine(t, where, c, flags)
	}
}

func (m *manifests) configMap(name string) *corev1.ConfigMap {
	for i := range m.configMaps {
		// configMapGenerator appends a content hash to generated names;
		// references are rewritten to match, so compare whole names.
		if m.configMaps[i].Name == name {
			return &m.configMaps[i]
		}
	}
	return nil
}

// listenFlags bind ports that must be declared as container ports (the
// gossip port over TCP and UDP).
var listenFlags = map[string][]corev1.Protocol{
	"http": {corev1.ProtocolTCP}, "admin": {corev1.ProtocolTCP}, "listen": {corev1.ProtocolTCP},
	"health-listen": {corev1.ProtocolTCP}, "metrics-listen": {corev1.ProtocolTCP},
	"gossip": {corev1.ProtocolTCP, corev1.ProtocolUDP},
}

// subcommands are the commands the manifests run per binary; operands
// marks those that take arguments besides flags (ixctl fetch FILE...).
var (
	subcommands = map[string]string{"coordinator": "serve", "ixctl": "fetch"}
	operands    = map[string]bool{"ixctl fetch": true}
)

// checkCommandLine checks every flag of the container's command line
// against the flags its binary defines, and that listen addresses use
// declared container ports.
func checkCommandLine(t *testing.T, where string, c corev1.Container, flags map[string]map[string]bool) {
	if len(c.Command) != 1 {
		t.Errorf("%s: command %v: want the binary alone", where, c.Command)
		return
	}
	bin := filepath.Base(c.Command[0])
	args := c.Args
	key := bin
	if sub := subcommands[bin]; sub != "" {
		if len(args) == 0 || args[0] != sub {
			t.Errorf("%s: %s args must start with %s", where, bin, sub)
			return
		}
		key, args = bin+" "+sub, args[1:]
	}
	known, ok := flags[key]
	if !ok {
		t.Errorf("%s: unknown binary %s", where, bin)
		return
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			if !operands[key] {
				t.Errorf("%s: stray argument %q", where, a)
			}
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			t.Errorf("%s: %s has no flag %s (built from this tree: a flag another change adds fails here until it is merged)", where, key, a)
			if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++ // its value, most likely
			}
			continue
		}
		if !hasVal && !known[name+"=bool"] {
			if i+1 >= len(args) {
				t.Errorf("%s: flag %s has no value", where, a)
				continue
			}
			i++
			val = args[i]
		}
		if protos, ok := listenFlags[name]; ok {
			_, port, err := net.SplitHostPort(val)
			p, perr := strconv.Atoi(port)
			if err != nil || perr != nil {
				t.Errorf("%s: --%s %q is not host:port", where, name, val)
				continue
			}
			for _, proto := range protos {
				if _, ok := containerPort(c, intstr.FromInt(p), proto); !ok {
					t.Errorf("%s: --%s binds %s port %d, which is not a container port", where, name, proto, p)
				}
			}
		}
	}
}

// checkCluster: the coordinator and the expert nodes join gossip through
// the headless Service, on a port it serves and the expert nodes bind.
func checkCluster(t *testing.T, m *manifests) {
	for _, w := range m.workloads() {
		for _, c := range w.pod.Spec.Containers {
			for i, a := range c.Args {
				if a != "--join" || i+1 >= len(c.Args) {
					continue
				}
				for _, seed := range strings.Split(c.Args[i+1], ",") {
					host, port, err := net.SplitHostPort(seed)
					if err != nil {
						t.Errorf("%s: --join %q: %v", w.name, seed, err)
						continue
					}
					svcName, rest, _ := strings.Cut(host, ".")
					if rest != namespace+".svc.cluster.local" {
						t.Errorf("%s: seed %s is not a service of namespace %s", w.name, host, namespace)
					}
					svc := m.service(svcName)
					if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
						t.Errorf("%s: seed %s is not a headless Service publishing not-ready pods", w.name, svcName)
						continue
					}
					p, _ := strconv.Atoi(port)
					found := false
					for _, sp := range svc.Spec.Ports {
						if sp.Port == int32(p) && sp.Protocol == corev1.ProtocolUDP {
							found = true
						}
					}
					if !found {
						t.Errorf("%s: seed port %d is not a UDP port of Service %s", w.name, p, svcName)
					}
				}
			}
		}
	}
}

// binaryFlags builds coordinator, expertnode and ixctl and asks each
// (cobra's __complete) for its flags: "coordinator serve", "expertnode"
// and "ixctl fetch" map to flag names; NAME=bool marks flags that take no
// value.
func binaryFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	flagsOnce.Do(func() { flagsVal, flagsErr = loadFlags(t.TempDir()) })
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	return flagsVal
}

var (
	flagsOnce sync.Once
	flagsVal  map[string]map[string]bool
	flagsErr  error
)

func loadFlags(dir string) (map[string]map[string]bool, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	build := exec.Command(gobin, "build", "-o", dir+string(os.PathSeparator), "./cmd/coordinator", "./cmd/expertnode", "./cmd/ixctl")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	out := map[string]map[string]bool{}
	for key, args := range map[string][]string{
		"coordinator serve": {filepath.Join(dir, "coordinator"), "__complete", "serve", "--"},
		"expertnode":        {filepath.Join(dir, "expertnode"), "__complete", "--"},
		"ixctl fetch":       {filepath.Join(dir, "ixctl"), "__complete", "fetch", "--"},
	} {
		b, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", strings.Join(args, " "), err)
		}
		fs := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			name, _, _ := strings.Cut(line, "\t")
			if strings.HasPrefix(name, "--") {
				fs[strings.TrimPrefix(name, "--")] = true
			}
		}
		// Shorthands and boolean flags, from the help text.
		hb, err := exec.Command(args[0], append(args[2:len(args)-1], "--help")...).Output()
		if err != nil {
			return nil, fmt.Errorf("%s --help: %v", args[0], err)
		}
		_, h, ok := strings.Cut(string(hb), "\nFlags:\n")
		if !ok {
			return nil, fmt.Errorf("%s --help has no Flags: section", args[0])
		}
		for _, m := range shorthand.FindAllStringSubmatch(h, -1) {
			fs[m[1]] = true
			fs[m[2]] = true
		}
		for _, m := range longFlag.FindAllStringSubmatch(h, -1) {
			if m[2] == "" {
				fs[m[1]+"=bool"] = true
			}
		}
		out[key] = fs
	}
	return out, nil
}

var (
	shorthand = regexp.MustCompile(`(?m)^\s+-([a-zA-Z]), --([a-z0-9-]+)`)
	longFlag  = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)( [a-zA-Z|]+)?\s`)
)

// TestHelpParsing keeps the help parsing honest.
func TestHelpParsing(t *testing.T) {
	h := "      --insecure          allow\n  -m, --model string      GGUF\n      --join strings   seeds\n"
	var bools []string
	for _, m := range longFlag.FindAllStringSubmatch(h, -1) {
		if m[2] == "" {
			bools = append(bools, m[1])
		}
	}
	if !slices.Equal(bools, []string{"insecure"}) {
		t.Fatalf("boolean flags %v", bools)
	}
}
