// rulecheck checks Prometheus rule files the way `promtool check rules` does: it parses
// them with Prometheus's own rulefmt package, which validates the YAML structure, every
// PromQL expression, and the label and annotation templates. promtool itself cannot be
// installed with `go install` (Prometheus's go.mod has exclude directives), so `make lint`
// builds this from the same module at a pinned version.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rulecheck FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation)
		if len(errs) > 0 {
			failed = true
			for _, err := range errs {
				fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			}
			continue
		}
		rules := 0
		for _, g := range groups.Groups {
			rules += len(g.Rules)
		}
		fmt.Printf("%s: SUCCESS: %d rules found\n", path, rules)
	}
	if failed {
		os.Exit(1)
	}
}
