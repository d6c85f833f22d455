package lethebench

import (
	"encoding/json"
	"fmt"
	"os"
)

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadReport reads a report WriteJSON wrote.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Ratio <= 0 {
		return nil, fmt.Errorf("%s: no ratio: not a lethe-bench result", path)
	}
	return &r, nil
}

// Compare says how res's ratio (pipeline over the bus's ceiling, which
// does not depend on the machine's speed as requests/s do) stands against
// base's: a line starting "WARNING" when it fell by more than 20%.
func Compare(base, res *Report) string {
	change := res.Ratio/base.Ratio - 1
	line := fmt.Sprintf("ratio %.3f against the baseline's %.3f (%+.0f%%); rps %.0f against %.0f; p99 %.0f ms against %.0f",
		res.Ratio, base.Ratio, 100*change, res.RPS, base.RPS, res.P99, base.P99)
	if change < -0.20 {
		return "WARNING: the pipeline fell behind its bus: " + line
	}
	return "ok: " + line
}
