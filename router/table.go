package router

// Table is the placement: for each (layer, expert), the nodes holding a
// replica. Rows are stored flat (CSR) so a lookup allocates nothing. A
// Table is immutable once built.
type Table struct {
	layers, experts int
	start           []int32 // start[l*experts+e] .. start[l*experts+e+1] index nodes
	nodes           []int32
}

// NewTable builds the table of nodes' holdings (holdings[n] is node n's)
// for a model of layers x experts.
func NewTable(layers, experts int, holdings []Holdings) *Table {
	t := &Table{layers: layers, experts: experts, start: make([]int32, layers*experts+1)}
	for l := range layers {
		for e := range experts {
			i := l*experts + e
			t.start[i] = int32(len(t.nodes))
			for n, h := range holdings {
				if h.Has(l, e) {
					t.nodes = append(t.nodes, int32(n))
				}
			}
		}
	}
	t.start[layers*experts] = int32(len(t.nodes))
	return t
}

// Replicas returns the nodes holding expert e of layer l (do not modify).
func (t *Table) Replicas(l, e int) []int32 {
	if l < 0 || l >= t.layers || e < 0 || e >= t.experts {
		return nil
	}
	i := l*t.experts + e
	return t.nodes[t.start[i]:t.start[i+1]]
}

// Coverage returns how many (layer, expert) pairs of the given layers have
// no replica, and the smallest replica count among the others.
func (t *Table) Coverage(layers []int) (missing, minReplicas int) {
	minReplicas = -1
	for _, l := range layers {
		for e := range t.experts {
			n := len(t.Replicas(l, e))
			if n == 0 {
				missing++
			} else if minReplicas < 0 || n < minReplicas {
				minReplicas = n
			}
		}
	}
	return missing, max(minReplicas, 0)
}
