package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/rules"
)

// TestRegistryShadow: a shadow needs a live ruleset and a source that
// compiles under the ruleset's name; a put replaces it with a new start
// (the same source again changes nothing); it is in every instance's Set;
// promote makes its source the next version and drops it at once; delete
// drops it; deleting the ruleset drops its shadow.
func TestRegistryShadow(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			clock := &stepClock{}
			r := newTestRegistry(t, tg, clock.Now)
			other := newTestRegistry(t, tg, nil) // another instance
			live, cand, cand2 := rulesetSource("payments", 100), rulesetSource("payments", 200), rulesetSource("payments", 300)

			if _, err := r.PutShadow(ctx, "payments", cand); !errors.Is(err, ErrRulesetNotFound) || !strings.Contains(err.Error(), "put the ruleset first") {
				t.Errorf("PutShadow of no ruleset = %v, want ErrRulesetNotFound saying why", err)
			}
			if _, err := r.Put(ctx, "payments", live); err != nil { // at(1)
				t.Fatal(err)
			}
			if _, err := r.GetShadow(ctx, "payments"); !errors.Is(err, ErrShadowNotFound) {
				t.Errorf("GetShadow with none = %v, want ErrShadowNotFound", err)
			}
			var list rules.ErrorList
			if _, err := r.PutShadow(ctx, "payments", rulesetSource("cards", 200)); !errors.As(err, &list) || !strings.Contains(err.Error(), `payments.yaml:1:10: ruleset name "cards" differs from "payments"`) {
				t.Errorf("PutShadow of another ruleset's source = %v, want the name mismatch at its position", err)
			}
			bad := []byte(strings.Replace(string(cand), "event.amount > 200.0", "event.amount >", 1))
			if _, err := r.PutShadow(ctx, "payments", bad); !errors.As(err, &list) || !strings.Contains(err.Error(), "payments.yaml:8:") {
				t.Errorf("PutShadow of a broken source = %v, want its errors at their positions", err)
			}
			if _, err := r.PutShadow(ctx, "a b", cand); !errors.Is(err, ErrInvalidName) {
				t.Errorf("PutShadow of a bad name = %v, want ErrInvalidName", err)
			}

			sh, err := r.PutShadow(ctx, "payments", cand) // at(2)
			if err != nil {
				t.Fatalf("PutShadow: %v", err)
			}
			want := ShadowRecord{Name: "payments", Source: cand, LiveVersion: 1, StartTime: at(2)}
			if diff := cmp.Diff(want, sh, recordCmp); diff != "" {
				t.Errorf("PutShadow (-want +got):\n%s", diff)
			}
			got, err := other.GetShadow(ctx, "payments")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, recordCmp); diff != "" {
				t.Errorf("GetShadow on another instance (-want +got):\n%s", diff)
			}
			// The same source again: as stored, start and all.
			again, err := r.PutShadow(ctx, "payments", cand)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, again, recordCmp); diff != "" {
				t.Errorf("PutShadow of the same source (-want +got):\n%s", diff)
			}
			// The live ruleset moves on; a new candidate starts again,
			// against the version live now.
			if _, err := r.Put(ctx, "payments", rulesetSource("payments", 150)); err != nil { // at(4)
				t.Fatal(err)
			}
			sh, err = r.PutShadow(ctx, "payments", cand2) // at(5)
			if err != nil {
				t.Fatal(err)
			}
			want = ShadowRecord{Name: "payments", Source: cand2, LiveVersion: 2, StartTime: at(5)}
			if diff := cmp.Diff(want, sh, recordCmp); diff != "" {
				t.Errorf("PutShadow replacing a shadow (-want +got):\n%s", diff)
			}
			set, _, err := other.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]ShadowRecord{want}, set.Shadows, recordCmp); diff != "" {
				t.Errorf("the Set's shadows (-want +got):\n%s", diff)
			}

			// Promote: the next version, the shadow gone.
			rec, err := other.PromoteShadow(ctx, "payments")
			if err != nil {
				t.Fatalf("PromoteShadow: %v", err)
			}
			if rec.Version != 3 || string(rec.Source) != string(cand2) {
				t.Errorf("PromoteShadow = version %d %q, want version 3 with the shadow's source", rec.Version, rec.Source)
			}
			cur, err := r.Get(ctx, "payments", 0)
			if err != nil || cur.Version != 3 || string(cur.Source) != string(cand2) {
				t.Errorf("Get after the promote = version %d %q, %v; want version 3 with the shadow's source", cur.Version, cur.Source, err)
			}
			if _, err := r.GetShadow(ctx, "payments"); !errors.Is(err, ErrShadowNotFound) {
				t.Errorf("GetShadow after the promote = %v, want ErrShadowNotFound", err)
			}
			if _, err := r.PromoteShadow(ctx, "payments"); !errors.Is(err, ErrShadowNotFound) {
				t.Errorf("PromoteShadow with none = %v, want ErrShadowNotFound", err)
			}
			if err := r.DeleteShadow(ctx, "payments"); !errors.Is(err, ErrShadowNotFound) {
				t.Errorf("DeleteShadow with none = %v, want ErrShadowNotFound", err)
			}

			// A shadow with the live source: promoting it stores no
			// version, and drops it.
			if _, err := r.PutShadow(ctx, "payments", cand2); err != nil {
				t.Fatal(err)
			}
			rec, err = r.PromoteShadow(ctx, "payments")
			if err != nil || rec.Version != 3 {
				t.Errorf("PromoteShadow of the live source = version %d, %v; want version 3", rec.Version, err)
			}
			if _, err := r.GetShadow(ctx, "payments"); !errors.Is(err, ErrShadowNotFound) {
				t.Errorf("GetShadow after promoting the live source = %v, want ErrShadowNotFound", err)
			}

			// Delete.
			if _, err := r.PutShadow(ctx, "payments", cand); err != nil {
				t.Fatal(err)
			}
			if err := other.DeleteShadow(ctx, "payments"); err != nil {
				t.Fatalf("DeleteShadow: %v", err)
			}
			if _, err := r.GetShadow(ctx, "payments"); !errors.Is(err, ErrShadowNotFound) {
				t.Errorf("GetShadow after DeleteShadow = %v, want ErrShadowNotFound", err)
			}

			// Deleting the ruleset deletes its shadow; a ruleset put again
			// has none.
			if _, err := r.PutShadow(ctx, "payments", cand); err != nil {
				t.Fatal(err)
			}
			if err := r.Delete(ctx, "payments"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.GetShadow(ctx, "payments"); !errors.Is(err, ErrShadowNotFound) {
				t.Errorf("GetShadow after the ruleset's deletion = %v, want ErrShadowNotFound", err)
			}
			if _, err := r.Put(ctx, "payments", live); err != nil {
				t.Fatal(err)
			}
			set, _, err = r.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Shadows) != 0 || len(set.Rulesets) != 1 {
				t.Errorf("Set after the deletion and a new put: %d rulesets, shadows %v; want 1 ruleset and no shadow", len(set.Rulesets), set.Shadows)
			}
		})
	}
}

// TestRegistryPromoteReplaced: a promote whose shadow was replaced (or
// dropped) after it was read changes nothing, neither the ruleset nor the
// shadow there is now.
func TestRegistryPromoteReplaced(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			r := newTestRegistry(t, tg, (&stepClock{}).Now)
			if _, err := r.Put(ctx, "payments", rulesetSource("payments", 100)); err != nil {
				t.Fatal(err)
			}
			read, err := r.PutShadow(ctx, "payments", rulesetSource("payments", 200))
			if err != nil {
				t.Fatal(err)
			}
			now, err := r.PutShadow(ctx, "payments", rulesetSource("payments", 300))
			if err != nil {
				t.Fatal(err)
			}
			// What PromoteShadow does after its read, with the shadow read.
			if _, _, err := r.write(ctx, "promote", "payments", read.Source, 0, read.StartTime); !errors.Is(err, ErrShadowReplaced) {
				t.Errorf("promote of a replaced shadow = %v, want ErrShadowReplaced", err)
			}
			cur, err := r.Get(ctx, "payments", 0)
			if err != nil || cur.Version != 1 {
				t.Errorf("the ruleset after a refused promote: version %d, %v; want version 1", cur.Version, err)
			}
			got, err := r.GetShadow(ctx, "payments")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(now, got, recordCmp); diff != "" {
				t.Errorf("the shadow after a refused promote (-want +got):\n%s", diff)
			}
			if err := r.DeleteShadow(ctx, "payments"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := r.write(ctx, "promote", "payments", now.Source, 0, now.StartTime); !errors.Is(err, ErrShadowReplaced) {
				t.Errorf("promote of a dropped shadow = %v, want ErrShadowReplaced", err)
			}
		})
	}
}
