package router

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
)

// PlacementFile is the static placement of experts on nodes, read from
// JSON. Expert nodes read their own entry (by name) to know what to hold;
// a coordinator reads every entry to know whom to ask. For example:
//
//	{"nodes": [
//	  {"name": "a", "addr": "10.0.0.1:7070", "experts": "0-191"},
//	  {"name": "b", "addr": "10.0.0.2:7070", "experts": "192-383",
//	   "layers": {"3": "0-383"}}
//	]}
//
// "experts" is the set held in every MoE layer; "layers" overrides it per
// layer (a layer listed with "" holds nothing).
type PlacementFile struct {
	Nodes []PlacementNode `json:"nodes"`
}

// PlacementNode is one node's entry.
type PlacementNode struct {
	Name    string            `json:"name"`
	Addr    string            `json:"addr"`
	Experts string            `json:"experts,omitempty"`
	Layers  map[string]string `json:"layers,omitempty"`
}

// ReadPlacementFile reads and checks the syntax of a placement file.
func ReadPlacementFile(path string) (*PlacementFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p PlacementFile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: placement file %s: %v", ErrSpec, path, err)
	}
	if len(p.Nodes) == 0 {
		return nil, fmt.Errorf("%w: placement file %s lists no nodes", ErrSpec, path)
	}
	seen := map[string]bool{}
	for i, n := range p.Nodes {
		if n.Name == "" {
			p.Nodes[i].Name = n.Addr
		}
		if seen[p.Nodes[i].Name] {
			return nil, fmt.Errorf("%w: placement file %s names node %q twice", ErrSpec, path, p.Nodes[i].Name)
		}
		seen[p.Nodes[i].Name] = true
	}
	return &p, nil
}

// Node returns the entry named name (or whose address is name).
func (p *PlacementFile) Node(name string) (*PlacementNode, error) {
	for i := range p.Nodes {
		if p.Nodes[i].Name == name || p.Nodes[i].Addr == name {
			return &p.Nodes[i], nil
		}
	}
	return nil, fmt.Errorf("%w: the placement file has no node %q", ErrSpec, name)
}

// Holdings resolves the entry for a model with the given MoE layers and
// experts per layer.
func (n *PlacementNode) Holdings(moeLayers []int, experts int) (Holdings, error) {
	h := Holdings{}
	isMoE := map[int]bool{}
	for _, l := range moeLayers {
		isMoE[l] = true
	}
	for k, spec := range n.Layers {
		l, err := strconv.Atoi(k)
		if err != nil || !isMoE[l] {
			return nil, fmt.Errorf("%w: node %s: %q is not a MoE layer of the model", ErrSpec, n.Name, k)
		}
		s := Set{}
		if spec != "" {
			if s, err = ParseSet(spec, experts); err != nil {
				return nil, fmt.Errorf("node %s layer %d: %w", n.Name, l, err)
			}
		}
		h[l] = &s
	}
	var all Set
	if n.Experts != "" {
		var err error
		if all, err = ParseSet(n.Experts, experts); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	for _, l := range moeLayers {
		if _, ok := h[l]; !ok {
			c := all.Clone()
			h[l] = &c
		}
	}
	return h, nil
}
