package k8s

import (
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/types"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// The box overlays/prod describes (see its kustomization.yaml): two
// sockets of 48 cores, SMT off, and the kubelet's static CPU manager with
// --reserved-cpus=0-1,48-49.
const (
	boxCPUs         = 96
	boxNUMANodes    = 2
	reservedCPUs    = 4
	reservedPerNUMA = reservedCPUs / boxNUMANodes
	cpusPerNUMA     = boxCPUs / boxNUMANodes
)

// imageName is the base's image name; overlays of operators rename it
// (kustomize images:), the ones in this tree keep it.
const imageName = "inference-x"

// generatedName is a kustomize generator's NAME-HASH.
var generatedName = regexp.MustCompile(`^[a-z0-9-]+-[a-z0-9]{10}$`)

// checkProperties checks what issue 16 asks of the manifests (item 4) on
// one built overlay.
func checkProperties(t *testing.T, dir string, m *manifests) {
	prod := filepath.Base(dir) == "prod"
	version := readVersion(t)
	for _, w := range m.workloads() {
		checkImages(t, w, version)
		checkSecurity(t, w)
		checkQoS(t, w, prod)
		checkThreads(t, m, w)
		checkModels(t, w)
		checkServerName(t, w)
		checkHealthProbes(t, m, w)
		checkScrape(t, m, w)
		if prod {
			checkCPUFit(t, m, w)
		}
	}
	for _, cm := range m.configMaps {
		// A generator names it NAME-HASH: a change renames it, which
		// rolls the pods that load it.
		if !generatedName.MatchString(cm.Name) {
			t.Errorf("ConfigMap %s is not generated with a content hash: changing it would not restart its pods", cm.Name)
		}
	}
	checkPDBs(t, m)
	checkPodSecurity(t, m)
	checkNetworkPolicies(t, m)
	checkPatches(t, dir)
}

func readVersion(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join("..", "..", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// containers returns a pod's init containers and then its containers.
func containers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

// checkImages: every container runs the project image at the VERSION
// tag.
func checkImages(t *testing.T, w workload, version string) {
	for _, c := range containers(w.pod.Spec) {
		if want := imageName + ":" + version; c.Image != want || strings.HasSuffix(c.Image, ":latest") {
			t.Errorf("%s container %s: image %q, want %q (the VERSION file)", w.name, c.Name, c.Image, want)
		}
	}
}

// checkSecurity: every container (init containers too) is locked down;
// CAP_SYS_NICE is added exactly to those that bind a NUMA node; the pod
// sets fsGroup when it mounts volumes the user must write or read.
func checkSecurity(t *testing.T, w workload) {
	ps := w.pod.Spec.SecurityContext
	if ps == nil || ps.FSGroup == nil || *ps.FSGroup != 65532 || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
		t.Errorf("%s: pod securityContext wants runAsNonRoot and fsGroup 65532 (it mounts volumes), got %+v", w.name, ps)
	}
	for _, c := range containers(w.pod.Spec) {
		where := w.name + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		switch {
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			t.Errorf("%s: runAsNonRoot is not true", where)
		case sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsGroup == nil || *sc.RunAsGroup != 65532:
			t.Errorf("%s: runAsUser/runAsGroup are not the image's 65532", where)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s: privileged", where)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("%s: seccompProfile is not RuntimeDefault", where)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
			t.Errorf("%s: capabilities do not drop ALL", where)
		}
		var add []corev1.Capability
		if sc.Capabilities != nil {
			add = sc.Capabilities.Add
		}
		want := []corev1.Capability(nil)
		if hasFlag(c.Args, "numa-node") {
			want = []corev1.Capability{"SYS_NICE"}
		}
		if !slices.Equal(add, want) {
			t.Errorf("%s: adds capabilities %v, want %v (SYS_NICE exactly where --numa-node is)", where, add, want)
		}
	}
}

// flagValue returns the value of --name (or -name) in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		n, v, eq := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || n != name {
			continue
		}
		if eq {
			return v, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func hasFlag(args []string, name string) bool {
	_, ok := flagValue(args, name)
	return ok
}

// flagPort returns the port of a host:port flag.
func flagPort(args []string, name string) (int32, bool) {
	v, ok := flagValue(args, name)
	if !ok {
		return 0, false
	}
	_, p, err := net.SplitHostPort(v)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(p)
	return int32(n), err == nil
}

// qos computes a pod's QoS class as Kubernetes does (the kubelet's
// GetPodQOS): over every container, init containers included, with
// requests defaulted to limits as the API server defaults them. BestEffort
// without any cpu or memory request or limit; Guaranteed when every
// container limits both and requests equal limits; else Burstable.
func qos(spec corev1.PodSpec) corev1.PodQOSClass {
	some, guaranteed := false, true
	for _, c := range containers(spec) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			lim, hasLim := c.Resources.Limits[r]
			req, hasReq := c.Resources.Requests[r]
			if !hasReq && hasLim {
				req, hasReq = lim, true
			}
			if hasReq && !req.IsZero() || hasLim && !lim.IsZero() {
				some = true
			}
			if !hasLim || lim.IsZero() || req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !some:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// checkQoS: prod pods are Guaranteed with whole CPUs in every container,
// so the static CPU manager pins them.
func checkQoS(t *testing.T, w workload, prod bool) {
	q := qos(w.pod.Spec)
	t.Logf("%s: QoS %s", w.name, q)
	if !prod {
		return
	}
	if q != corev1.PodQOSGuaranteed {
		t.Errorf("%s: QoS %s, want Guaranteed (every container, init containers too, with cpu and memory requests equal to limits)", w.name, q)
	}
	for _, c := range containers(w.pod.Spec) {
		if cpu := c.Resources.Limits.Cpu(); cpu.MilliValue()%1000 != 0 {
			t.Errorf("%s container %s: cpu %s is not a whole number of CPUs: the static CPU manager pins only whole CPUs", w.name, c.Name, cpu)
		}
	}
}

// podCPU is a pod's effective CPU request as the scheduler counts it: the
// largest of any init container's and the sum of the containers'.
func podCPU(spec corev1.PodSpec) resource.Quantity {
	var sum, initMax resource.Quantity
	for _, c := range spec.Containers {
		sum.Add(*c.Resources.Requests.Cpu())
	}
	for _, c := range spec.InitContainers {
		if r := c.Resources.Requests.Cpu(); r.Cmp(initMax) > 0 {
			initMax = *r
		}
	}
	if initMax.Cmp(sum) > 0 {
		return initMax
	}
	return sum
}

// checkCPUFit: on the prod box, each pod's CPUs fit after the static CPU
// manager's reservation, each container that binds a NUMA node fits that
// node's allocatable CPUs, two of them do not fit one node (so the
// single-numa-node topology manager puts them on different nodes), and
// the NUMA nodes they name are distinct nodes of the box.
func checkCPUFit(t *testing.T, m *manifests, w workload) {
	cpu := podCPU(w.pod.Spec)
	if avail := int64(boxCPUs - reservedCPUs); cpu.Value() > avail {
		t.Errorf("%s: pod requests %s CPUs, the box has %d - %d reserved = %d", w.name, cpu.String(), boxCPUs, reservedCPUs, avail)
	}
	seen := map[string]bool{}
	for _, c := range w.pod.Spec.Containers {
		node, ok := flagValue(c.Args, "numa-node")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(node)
		if err != nil || n < 0 || n >= boxNUMANodes || seen[node] {
			t.Errorf("%s container %s: --numa-node %q is not a distinct node of the box's %d", w.name, c.Name, node, boxNUMANodes)
		}
		seen[node] = true
		req := c.Resources.Requests.Cpu().Value()
		if per := int64(cpusPerNUMA - reservedPerNUMA); req > per || 2*req <= per {
			t.Errorf("%s container %s: %d CPUs: want at most %d (one NUMA node less its reservation) and more than half of it", w.name, c.Name, req, per)
		}
	}
}

// env returns the literal values of a container's environment: its env
// values and the ConfigMaps it loads.
func env(m *manifests, c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm := m.configMap(ef.ConfigMapRef.Name); cm != nil {
				for k, v := range cm.Data {
					out[k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			out[e.Name] = e.Value
		}
	}
	return out
}

func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := vars[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

// checkThreads: an expert node's --threads is its whole CPU limit.
func checkThreads(t *testing.T, m *manifests, w workload) {
	for _, c := range w.pod.Spec.Containers {
		v, ok := flagValue(c.Args, "threads")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(expand(v, env(m, c)))
		lim := c.Resources.Limits.Cpu()
		if err != nil || lim.MilliValue()%1000 == 0 && int64(n) != lim.Value() {
			t.Errorf("%s container %s: --threads %s (%d), want its CPU limit %s", w.name, c.Name, v, n, lim)
		}
	}
}

// checkModels: every main container's model (-m) is a file an init
// container fetches (ixctl fetch --dir DIR FILE...), and an expert node's
// file is named by its --id, as ixctl split names a placement node's
// shard.
func checkModels(t *testing.T, w workload) {
	fetched := map[string]bool{}
	for _, c := range w.pod.Spec.InitContainers {
		dir, _ := flagValue(c.Args, "dir")
		for i := 1; i < len(c.Args); i++ {
			if strings.HasPrefix(c.Args[i], "-") {
				i++
				continue
			}
			fetched[dir+"/"+c.Args[i]] = true
		}
	}
	for _, c := range w.pod.Spec.Containers {
		model, _ := flagValue(c.Args, "m")
		if !fetched[model] {
			t.Errorf("%s container %s: model %q is not fetched by an init container (%v)", w.name, c.Name, model, slices.Sorted(maps.Keys(fetched)))
		}
		if id, ok := flagValue(c.Args, "id"); ok && filepath.Base(model) != id+".gguf" {
			t.Errorf("%s container %s: model %s is not its --id %s's shard (%s.gguf)", w.name, c.Name, model, id, id)
		}
	}
}

// checkServerName: the coordinator dials the expert nodes at the pod IPs
// they advertise (--rpc-advertise $(POD_IP):PORT), which no certificate
// lists; with TLS it must verify a fixed name (--tls-server-name).
func checkServerName(t *testing.T, w workload) {
	for _, c := range w.pod.Spec.Containers {
		if filepath.Base(c.Command[0]) != "coordinator" || !hasFlag(c.Args, "tls-ca") {
			continue
		}
		if v, _ := flagValue(c.Args, "tls-server-name"); v == "" {
			t.Errorf("%s container %s: TLS to nodes at pod IPs needs --tls-server-name (a SAN of the nodes' certificate)", w.name, c.Name)
		}
	}
}

// probePort resolves a probe's port to a number in container c.
func probePort(c corev1.Container, p *corev1.Probe) (int32, bool) {
	switch {
	case p == nil:
		return 0, false
	case p.HTTPGet != nil:
		return containerPort(c, p.HTTPGet.Port, corev1.ProtocolTCP)
	case p.GRPC != nil:
		return containerPort(c, intstr.FromInt32(p.GRPC.Port), corev1.ProtocolTCP)
	}
	return 0, false
}

// checkHealthProbes: every main container's probes reach a port that
// serves plaintext health (the kubelet speaks no TLS to them): --http
// for the coordinator, --health-listen for an expert node; readiness asks
// /readyz and liveness /livez, so a cluster short of experts is taken
// out of traffic, not restarted.
func checkHealthProbes(t *testing.T, m *manifests, w workload) {
	for _, c := range w.pod.Spec.Containers {
		where := w.name + " container " + c.Name
		flag := map[string]string{"coordinator": "http", "expertnode": "health-listen"}[filepath.Base(c.Command[0])]
		want, ok := flagPort(c.Args, flag)
		if !ok {
			t.Errorf("%s: no --%s HOST:PORT to probe", where, flag)
			continue
		}
		for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
			if p == nil {
				continue
			}
			if got, ok := probePort(c, p); !ok || got != want {
				t.Errorf("%s: %s probe port %d is not the plaintext health port %d (--%s)", where, kind, got, want, flag)
			}
			path := map[string]string{"readiness": "/readyz", "liveness": "/livez", "startup": "/livez"}[kind]
			if p.HTTPGet == nil || p.HTTPGet.Path != path {
				t.Errorf("%s: %s probe wants httpGet %s", where, kind, path)
			}
		}
	}
}

// checkScrape: the pod's Prometheus annotations name a declared container
// port that serves /metrics (the coordinator's --http, an expert node's
// --metrics-listen), and every --metrics-listen port is declared and
// named metrics* (what a port-name scrape job keeps).
func checkScrape(t *testing.T, m *manifests, w workload) {
	a := w.pod.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations %v", w.name, a)
	}
	port, err := strconv.Atoi(a["prometheus.io/port"])
	metrics := map[int32]bool{}
	for _, c := range w.pod.Spec.Containers {
		if p, ok := flagPort(c.Args, "metrics-listen"); ok {
			metrics[p] = true
			found := false
			for _, cp := range c.Ports {
				found = found || cp.ContainerPort == p && strings.HasPrefix(cp.Name, "metrics")
			}
			if !found {
				t.Errorf("%s container %s: --metrics-listen port %d is not a container port named metrics*", w.name, c.Name, p)
			}
		}
		if filepath.Base(c.Command[0]) == "coordinator" {
			if p, ok := flagPort(c.Args, "http"); ok {
				metrics[p] = true
			}
		}
	}
	if err != nil || !metrics[int32(port)] || !podHasPort(w.pod.Spec, intstr.FromInt(port), corev1.ProtocolTCP) {
		t.Errorf("%s: prometheus.io/port %q is not a declared port serving /metrics (%v)", w.name, a["prometheus.io/port"], metrics)
	}
}

// podSecurityLevel is the most restrictive Pod Security standard a pod
// meets, as far as these manifests go: restricted unless a container adds
// a capability other than NET_BIND_SERVICE (baseline allows a short list,
// privileged anything).
func podSecurityLevel(spec corev1.PodSpec) string {
	baseline := []corev1.Capability{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
		"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
	level := "restricted"
	for _, c := range containers(spec) {
		if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
			continue
		}
		for _, a := range c.SecurityContext.Capabilities.Add {
			switch {
			case !slices.Contains(baseline, a):
				return "privileged"
			case a != "NET_BIND_SERVICE":
				level = "baseline"
			}
		}
	}
	return level
}

// checkPodSecurity: the namespace's enforced Pod Security level admits
// every pod, and is no looser than the pods need.
func checkPodSecurity(t *testing.T, m *manifests) {
	rank := map[string]int{"restricted": 0, "baseline": 1, "privileged": 2}
	need := "restricted"
	for _, w := range m.workloads() {
		if l := podSecurityLevel(w.pod.Spec); rank[l] > rank[need] {
			need = l
		}
	}
	for _, ns := range m.namespaces {
		got, ok := ns.Labels["pod-security.kubernetes.io/enforce"]
		if _, known := rank[got]; !ok || !known {
			t.Errorf("namespace %s: no pod-security.kubernetes.io/enforce level (want %s)", ns.Name, need)
			continue
		}
		if got != need {
			t.Errorf("namespace %s enforces Pod Security %q, its pods need %q", ns.Name, got, need)
		}
	}
}

// checkPDBs: every workload has one budget and it allows one voluntary
// disruption (a node drain).
func checkPDBs(t *testing.T, m *manifests) {
	for _, w := range m.workloads() {
		var n int
		for _, p := range m.pdbs {
			if p.Spec.Selector == nil || !labels.SelectorFromSet(p.Spec.Selector.MatchLabels).Matches(labels.Set(w.pod.Labels)) {
				continue
			}
			n++
			allowed := int32(0)
			switch s := p.Spec; {
			case s.MaxUnavailable != nil:
				v, err := intstr.GetScaledValueFromIntOrPercent(s.MaxUnavailable, int(w.replicas), true)
				if err == nil {
					allowed = int32(v)
				}
			case s.MinAvailable != nil:
				v, err := intstr.GetScaledValueFromIntOrPercent(s.MinAvailable, int(w.replicas), true)
				if err == nil {
					allowed = w.replicas - int32(v)
				}
			}
			if allowed < 1 {
				t.Errorf("PodDisruptionBudget %s allows %d of %s's %d pods to be evicted: a drain would block", p.Name, allowed, w.name, w.replicas)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets, want 1", w.name, n)
		}
	}
}

// peerSet is who a policy rule admits: all (no peers), or the workloads
// its pod selectors match in the namespace, or outside sources
// (namespaceSelector or ipBlock).
type peerSet struct {
	all       bool
	workloads map[string]bool
	outside   bool
}

func peers(m *manifests, ps []networkingv1.NetworkPolicyPeer) peerSet {
	s := peerSet{all: len(ps) == 0, workloads: map[string]bool{}}
	for _, p := range ps {
		if p.NamespaceSelector != nil || p.IPBlock != nil || p.PodSelector == nil {
			s.outside = true
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
		if err != nil {
			s.outside = true
			continue
		}
		for _, w := range m.workloads() {
			if sel.Matches(labels.Set(w.pod.Labels)) {
				s.workloads[w.name] = true
			}
		}
		if sel.Empty() {
			s.outside = true // every pod of the namespace
		}
	}
	return s
}

// portMatches reports whether a rule's ports admit port/proto.
func portMatches(ports []networkingv1.NetworkPolicyPort, c corev1.Container, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		n, ok := containerPort(c, *p.Port, proto)
		if p.Port.Type == intstr.Int {
			n, ok = p.Port.IntVal, true
		}
		end := n
		if p.EndPort != nil {
			end = *p.EndPort
		}
		if ok && port >= n && port <= end {
			return true
		}
	}
	return false
}

// admitted returns who may reach port/proto of container c in workload w,
// merged over the Ingress policies that select w's pods; isolated is
// false when no policy selects them.
func admitted(m *manifests, w workload, c corev1.Container, port int32, proto corev1.Protocol) (sources []peerSet, isolated bool) {
	for _, np := range m.policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(w.pod.Labels)) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		isolated = true
		for _, r := range np.Spec.Ingress {
			if portMatches(r.Ports, c, port, proto) {
				sources = append(sources, peers(m, r.From))
			}
		}
	}
	return sources, isolated
}

// egressAllowed reports whether workload from may send to port/proto of
// container c of workload to.
func egressAllowed(m *manifests, from, to workload, c corev1.Container, port int32, proto corev1.Protocol) bool {
	isolated := false
	for _, np := range m.policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(from.pod.Labels)) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			continue
		}
		isolated = true
		for _, r := range np.Spec.Egress {
			if p := peers(m, r.To); portMatches(r.Ports, c, port, proto) && (p.all || p.workloads[to.name]) {
				return true
			}
		}
	}
	return !isolated
}

// checkNetworkPolicies: every pod is isolated both ways; an expert node's
// gRPC ports admit the coordinator only, every gossip port (TCP and UDP)
// members only, and both are admitted (ingress at the receiver and egress
// at the sender); the metrics ports admit Prometheus from outside the
// namespace; every port a policy names is a port of a pod it selects.
func checkNetworkPolicies(t *testing.T, m *manifests) {
	byRole := map[string]workload{}
	members := map[string]bool{}
	for _, w := range m.workloads() {
		byRole[w.pod.Labels["app.kubernetes.io/component"]] = w
		members[w.name] = true
	}
	coord, node := byRole["coordinator"], byRole["expertnode"]
	for _, w := range m.workloads() {
		for _, ty := range []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress} {
			if !slices.ContainsFunc(m.policies, func(np networkingv1.NetworkPolicy) bool {
				sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
				return err == nil && sel.Matches(labels.Set(w.pod.Labels)) && slices.Contains(np.Spec.PolicyTypes, ty)
			}) {
				t.Errorf("%s: no NetworkPolicy isolates its %s", w.name, ty)
			}
		}
	}
	check := func(w workload, c corev1.Container, port int32, proto corev1.Protocol, what string, want map[string]bool, senders []workload) {
		srcs, isolated := admitted(m, w, c, port, proto)
		where := w.name + " container " + c.Name
		if !isolated {
			t.Errorf("%s: %s port %d/%s is not isolated", where, what, port, proto)
			return
		}
		got := map[string]bool{}
		for _, s := range srcs {
			if s.all || s.outside {
				t.Errorf("%s: %s port %d/%s admits pods beyond %v", where, what, port, proto, slices.Sorted(maps.Keys(want)))
			}
			for k := range s.workloads {
				got[k] = true
				if !want[k] {
					t.Errorf("%s: %s port %d/%s admits %s", where, what, port, proto, k)
				}
			}
		}
		for _, s := range senders {
			if !got[s.name] {
				t.Errorf("%s: %s port %d/%s does not admit %s", where, what, port, proto, s.name)
			}
			if !egressAllowed(m, s, w, c, port, proto) {
				t.Errorf("%s may not send to %s %s port %d/%s (egress)", s.name, where, what, port, proto)
			}
		}
	}
	for _, w := range m.workloads() {
		for _, c := range w.pod.Spec.Containers {
			if p, ok := flagPort(c.Args, "gossip"); ok {
				for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
					check(w, c, p, proto, "gossip", members, []workload{coord, node})
				}
			}
			if w.name == node.name {
				if p, ok := flagPort(c.Args, "listen"); ok {
					check(w, c, p, corev1.ProtocolTCP, "gRPC", map[string]bool{coord.name: true}, []workload{coord})
				}
				if p, ok := flagPort(c.Args, "metrics-listen"); ok {
					srcs, _ := admitted(m, w, c, p, corev1.ProtocolTCP)
					if !slices.ContainsFunc(srcs, func(s peerSet) bool { return s.outside || s.all }) {
						t.Errorf("%s container %s: metrics port %d admits no scraper", w.name, c.Name, p)
					}
				}
			}
		}
	}
	// Every port a policy names exists on a pod it selects.
	for _, np := range m.policies {
		sel, _ := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		var selected []workload
		for _, w := range m.workloads() {
			if sel.Matches(labels.Set(w.pod.Labels)) {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			t.Errorf("NetworkPolicy %s selects no pods", np.Name)
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				proto := corev1.ProtocolTCP
				if p.Protocol != nil {
					proto = *p.Protocol
				}
				if p.Port != nil && !slices.ContainsFunc(selected, func(w workload) bool { return podHasPort(w.pod.Spec, *p.Port, proto) }) {
					t.Errorf("NetworkPolicy %s admits port %s/%s, which no pod it selects declares", np.Name, p.Port.String(), proto)
				}
			}
		}
	}
}

// checkPatches: an overlay patches by strategic merge (or by value, in a
// ConfigMap); a JSON 6902 patch may not address a list element by index,
// which breaks silently when the list changes.
func checkPatches(t *testing.T, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := kyaml.Unmarshal(b, &k); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	if len(k.PatchesJson6902) > 0 || len(k.PatchesStrategicMerge) > 0 {
		t.Errorf("%s: deprecated patchesJson6902/patchesStrategicMerge: use patches", dir)
	}
	for _, p := range k.Patches {
		text := p.Patch
		if p.Path != "" {
			b, err := os.ReadFile(filepath.Join(dir, p.Path))
			if err != nil {
				t.Fatal(err)
			}
			text = string(b)
		}
		var ops []map[string]any
		if kyaml.Unmarshal([]byte(text), &ops) != nil {
			continue // not a list: a strategic merge patch
		}
		for _, op := range ops {
			path, _ := op["path"].(string)
			for _, seg := range strings.Split(path, "/") {
				if _, err := strconv.Atoi(seg); err == nil || seg == "-" {
					t.Errorf("%s: JSON patch %s %s addresses a list element by index: use a strategic merge patch", dir, op["op"], path)
				}
			}
		}
	}
}
