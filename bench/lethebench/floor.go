package lethebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// Floor is what the security contract alone costs a request: the
// signatures, signature checks and sealed subjects one erasure over the
// bench's systems needs, made by the functions the pipeline calls, with no
// store and no bus. No pipeline on this machine can beat it, whatever its
// store does; Bound says how near to the bus's ceiling that lets one come.
type Floor struct {
	Requests int     `json:"requests"`
	Cores    int     `json:"cores"` // the goroutines doing it, GOMAXPROCS
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"requests_per_sec"`
	// CPUPerRequest is in seconds.
	CPUPerRequest float64 `json:"cpu_per_request"`
	// Per request: Ed25519 signatures made and checked, and X25519
	// scalar multiplications (a key made, a subject sealed or opened).
	Signatures  int `json:"signatures"`
	Checks      int `json:"checks"`
	ScalarMults int `json:"scalar_mults"`
	// Bound is the highest pipeline:raw ratio this machine allows the
	// contract (ratioBound), against the raw ceiling of the headline's
	// durability; 0 when that was not run.
	Bound float64 `json:"ratio_bound,omitempty"`
	// BoundRPS is Bound in requests/s: what the plot draws.
	BoundRPS float64 `json:"bound_requests_per_sec,omitempty"`
}

// floorMax is the most requests the floor runs: it lasts about a second
// on two cores, long enough for a steady figure.
const floorMax = 2000

// runFloor does n requests' cryptography on every core, as the pipeline
// does it for an erasure:
//   - the orchestrator seals the subject to itself, for its store (a key
//     made, a multiplication), then to each system's connector under one
//     ephemeral key (a key made, a multiplication each), and signs each
//     system's task;
//   - each connector checks its task, opens the subject (a
//     multiplication), and signs its receipt;
//   - the orchestrator checks each receipt and signs the certificate.
//
// Each check must pass: a floor that skipped its work would be a lie.
func runFloor(ctx context.Context, dir string, n int, bar *Bar) (Floor, error) {
	f, err := newFloorKeys(dir, systems)
	if err != nil {
		return Floor{}, err
	}
	quiet(ctx, bar)
	bar.Start("contract floor", n)
	defer bar.Done()
	var next, done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	cpu0, start := cpuTime(), time.Now()
	cores := runtime.GOMAXPROCS(0)
	for range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n) && ctx.Err() == nil; i = next.Add(1) {
				if err := f.request(fmt.Sprintf("floor-%d", i)); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if d := done.Add(1); d%100 == 0 {
					bar.Set(int(d))
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	if firstErr != nil {
		return Floor{}, fmt.Errorf("contract floor: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return Floor{}, err
	}
	k := len(f.systems)
	return Floor{Requests: n, Cores: cores, Seconds: elapsed.Seconds(), RPS: float64(n) / elapsed.Seconds(), CPUPerRequest: cpu.Seconds() / float64(n),
		Signatures: 2*k + 1, Checks: 2 * k, ScalarMults: 2 + (1 + k) + k}, nil
}

// ratioBound is the highest pipeline:raw ratio a machine of cores allows
// when every request costs at least floorCPU seconds of cryptography and
// busCPU seconds of the bus's own work (the raw run's CPU per request: the
// pipeline publishes and consumes the same messages), the raw ceiling
// being rawRPS requests/s. Store, encoding and scheduling are taken as
// free, so a real pipeline stays below it.
func ratioBound(cores int, floorCPU, busCPU, rawRPS float64) float64 {
	if floorCPU+busCPU <= 0 || rawRPS <= 0 {
		return 0
	}
	return float64(cores) / (floorCPU + busCPU) / rawRPS
}

// floorKeys are the orchestrator's keys and each system's connector's.
type floorKeys struct {
	orch       *proof.Signer
	orchSeal   *proof.SealKey
	connectors map[string]*proof.Signer
	seals      map[string]*proof.SealKey
	keys       proof.KeySet
	systems    []string
	now        time.Time
}

func newFloorKeys(dir string, systems []string) (*floorKeys, error) {
	now := time.Now().UTC()
	f := &floorKeys{connectors: map[string]*proof.Signer{}, seals: map[string]*proof.SealKey{}, systems: systems, now: now}
	signer := func(owner string) (*proof.Signer, error) {
		seed := make([]byte, 32)
		_, _ = rand.Read(seed)
		s, err := proof.SignerFromSeed(hex.EncodeToString(seed), owner, now.Add(-time.Hour))
		if err == nil {
			f.keys.Keys = append(f.keys.Keys, s.Key)
		}
		return s, err
	}
	var err error
	if f.orch, err = signer(proof.RoleOrchestrator); err != nil {
		return nil, err
	}
	if f.orchSeal, err = proof.LoadOrCreateSealKey(filepath.Join(dir, "orchestrator.seal")); err != nil {
		return nil, err
	}
	for _, sys := range systems {
		if f.connectors[sys], err = signer(sys); err != nil {
			return nil, err
		}
		if f.seals[sys], err = proof.LoadOrCreateSealKey(filepath.Join(dir, sys+".seal")); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// request is one request's cryptography (see runFloor).
func (f *floorKeys) request(id string) error {
	subject := &lethev1.Subject{Email: id + "@example.com", UserId: id}
	if _, err := proof.SealSubject(f.orchSeal.Public, subject); err != nil {
		return err
	}
	sealer, err := proof.NewSealer()
	if err != nil {
		return err
	}
	cert := &proof.Certificate{RequestID: id, Tenant: "default", Type: lifecycle.Erasure, ReceivedAt: f.now, Deadline: f.now.AddDate(0, 1, 0),
		CompletedAt: f.now, State: lifecycle.Fulfilled, DeadlineMet: true}
	for _, sys := range f.systems {
		seal := f.seals[sys]
		task := &lethev1.Task{RequestId: id, TaskId: id + "/" + sys, System: sys, Action: lethev1.Action_ACTION_ERASE, Tenant: "default",
			Deadline: timestamppb.New(f.now.AddDate(0, 1, 0)), Attempt: 1}
		if task.SealedSubject, err = sealer.SealSubject(seal.Public, subject); err != nil {
			return err
		}
		if err := proof.SignTask(f.orch, task); err != nil {
			return err
		}
		if err := proof.VerifyTask(f.keys, task, f.now); err != nil {
			return err
		}
		if _, err := seal.OpenSubject(task.GetSealedSubject()); err != nil {
			return err
		}
		r := &lethev1.Receipt{RequestId: id, TaskId: task.GetTaskId(), System: sys, Action: task.GetAction(), Outcome: lethev1.Outcome_OUTCOME_ERASED,
			Counts: []*lethev1.CategoryCount{{Category: "profile", Count: 1}}, ConnectorTime: timestamppb.New(f.now), Attempt: 1}
		if err := proof.SignReceipt(f.connectors[sys], r); err != nil {
			return err
		}
		if err := proof.VerifyReceipt(f.keys, r, f.now); err != nil {
			return err
		}
		b, err := proof.ReceiptBytes(r)
		if err != nil {
			return err
		}
		cert.Systems = append(cert.Systems, proof.SystemResult{System: sys, Outcome: lifecycle.Erased, KeyID: r.GetKeyId(), Receipt: append(b, r.GetSignature()...)})
	}
	cert.Sign(f.orch)
	return nil
}
