package registry

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRegistryMaxVersions: the history of a ruleset keeps its newest
// MaxVersions versions, trimmed at each change; the current version and
// the one a deletion leaves stay; an older version is NOT_FOUND naming the
// bound; pages end at the oldest version kept; and the Redis hash holds no
// more than the versions kept.
func TestRegistryMaxVersions(t *testing.T) {
	const keep, puts = 5, 40
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			client := tg.client(t)
			r, err := New(Options{Client: client, KeyPrefix: tg.prefix, Clock: (&stepClock{}).Now, MaxVersions: keep})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= puts; i++ {
				if _, err := r.Put(ctx, "payments", rulesetSource("payments", i)); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := client.HLen(ctx, r.rsKey+"payments").Result(); err != nil || n > 2*keep+4 {
				t.Errorf("the ruleset's hash has %d fields (%v), want at most %d: %d versions and n, d, c, o", n, err, 2*keep+4, keep)
			}
			// Paged by two: the newest five, then nothing.
			var got []int64
			tok := ""
			for range puts {
				page, next, err := r.Versions(ctx, "payments", 2, tok)
				if err != nil {
					t.Fatal(err)
				}
				for _, rec := range page {
					got = append(got, rec.Version)
				}
				if tok = next; tok == "" {
					break
				}
			}
			if diff := cmp.Diff([]int64{40, 39, 38, 37, 36}, got); diff != "" {
				t.Errorf("versions kept (-want +got):\n%s", diff)
			}
			_, err = r.Get(ctx, "payments", 3)
			if !errors.Is(err, ErrVersionNotFound) || !strings.Contains(err.Error(), "trimmed") || !strings.Contains(err.Error(), "newest 5 versions") || !strings.Contains(err.Error(), "rules.max_versions") {
				t.Errorf("Get of a trimmed version: %v, want ErrVersionNotFound naming the bound", err)
			}
			if _, err := r.Rollback(ctx, "payments", 35); !errors.Is(err, ErrVersionNotFound) || !strings.Contains(err.Error(), "trimmed") {
				t.Errorf("Rollback to a trimmed version: %v, want ErrVersionNotFound, trimmed", err)
			}
			if rec, err := r.Get(ctx, "payments", 36); err != nil || rec.Version != 36 {
				t.Errorf("Get of the oldest version kept: %v %v", rec.Version, err)
			}

			// A page token of a version trimmed since is the end.
			_, tok, err = r.Versions(ctx, "payments", 4, "")
			if err != nil || tok == "" {
				t.Fatalf("first page: token %q, %v", tok, err)
			}
			for i := 41; i <= 50; i++ {
				if _, err := r.Put(ctx, "payments", rulesetSource("payments", i)); err != nil {
					t.Fatal(err)
				}
			}
			if page, next, err := r.Versions(ctx, "payments", 4, tok); err != nil || len(page) != 0 || next != "" {
				t.Errorf("a page after trimmed versions: %d versions, next %q, %v; want none", len(page), next, err)
			}

			// With the smallest history, a deletion still leaves the
			// version it deleted to roll back to.
			r2, err := New(Options{Client: client, KeyPrefix: tg.prefix, MaxVersions: MinMaxVersions})
			if err != nil {
				t.Fatal(err)
			}
			if err := r2.Delete(ctx, "payments"); err != nil {
				t.Fatal(err)
			}
			back, err := r2.Rollback(ctx, "payments", 0)
			if err != nil || back.RollbackOf != 50 || !bytes.Equal(back.Source, rulesetSource("payments", 50)) {
				t.Errorf("Rollback of the deletion: %+v, %v; want the source of version 50", back, err)
			}
		})
	}
}

func TestRegistryMaxVersionsOption(t *testing.T) {
	tg := redisTargets(t)[0]
	if _, err := New(Options{Client: tg.client(t), MaxVersions: 1}); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("MaxVersions 1: %v, want an error naming the least", err)
	}
	r, err := New(Options{Client: tg.client(t)})
	if err != nil || r.keep != DefaultMaxVersions {
		t.Errorf("default MaxVersions %d, %v; want %d", r.keep, err, DefaultMaxVersions)
	}
}

// TestRegistryListVersionsWithoutSource: the history lists without
// sources by default (Redis sends none), and a page with sources ends
// before it would pass MaxSourceBytes, one version at least.
func TestRegistryListVersionsWithoutSource(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			r := newTestRegistry(t, tg, (&stepClock{}).Now)
			pad := strings.Repeat("#", 1000) + "\n"
			for i := 1; i <= 6; i++ {
				if _, err := r.Put(ctx, "payments", append([]byte(pad), rulesetSource("payments", i)...)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Delete(ctx, "payments"); err != nil {
				t.Fatal(err)
			}
			page, next, err := r.ListVersions(ctx, "payments", VersionQuery{})
			if err != nil || next != "" || len(page) != 7 {
				t.Fatalf("ListVersions: %d versions, next %q, %v", len(page), next, err)
			}
			for _, rec := range page {
				if rec.Source != nil || rec.UpdateTime.IsZero() || rec.CreateTime.IsZero() {
					t.Errorf("version %d without source: %+v", rec.Version, rec)
				}
			}
			if !page[0].Deleted || page[1].Deleted {
				t.Errorf("deletion flags: %v %v", page[0].Deleted, page[1].Deleted)
			}
			// Sources of about 1.1 KB each within 2.5 KB: two a page
			// (the deletion's is empty: it goes with the next two).
			var sizes []int
			tok := ""
			for range 10 {
				page, next, err := r.ListVersions(ctx, "payments", VersionQuery{Source: true, MaxSourceBytes: 2500, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(page))
				for _, rec := range page {
					if !rec.Deleted && !bytes.HasPrefix(rec.Source, []byte(pad)) {
						t.Errorf("version %d: source %q", rec.Version, rec.Source)
					}
				}
				if tok = next; tok == "" {
					break
				}
			}
			if diff := cmp.Diff([]int{3, 2, 2}, sizes); diff != "" {
				t.Errorf("versions per page within 2500 bytes of sources (-want +got):\n%s", diff)
			}
			// One source over the bound still makes a page.
			page, _, err = r.ListVersions(ctx, "payments", VersionQuery{Source: true, MaxSourceBytes: 10, PageToken: tok})
			if err != nil || len(page) == 0 {
				t.Errorf("a page under a bound smaller than a source: %d versions, %v", len(page), err)
			}
		})
	}
}
