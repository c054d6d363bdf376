package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shrike-cep/shrike/rules"
)

// Defaults of DirSyncOptions.
const (
	DefaultDebounce    = 200 * time.Millisecond
	DefaultDirRetry    = 2 * time.Second
	DefaultDirResync   = time.Minute
	maxLoggedFileErrs  = 20
	fileErrorsHelpText = "Ruleset files that failed to load (each content once); the running version stays."
)

// DirSyncOptions configure a DirSync. Zero values are the documented
// defaults.
type DirSyncOptions struct {
	// Dir is the folder of ruleset files. Required.
	Dir string
	// Registry receives the rulesets. Required.
	Registry *Registry
	// Debounce is how long the folder must be quiet after a change before
	// it is read: an editor's save is several events. Default
	// DefaultDebounce.
	Debounce time.Duration
	// Retry is how soon a sync that could not reach the registry is tried
	// again. Default DefaultDirRetry.
	Retry time.Duration
	// Resync is how often the folder is read even without a change event,
	// for file systems that do not report every change (network mounts).
	// Default DefaultDirResync.
	Resync time.Duration
	// Logger receives every file error (file:line:col) and every change
	// made. Default: discard.
	Logger *slog.Logger
	// Registerer registers shrike_rules_file_errors_total. Nil keeps it
	// unregistered.
	Registerer prometheus.Registerer
}

// DirSync makes a folder of ruleset files the truth for the rulesets it
// holds (`shrike serve --rules DIR`, docs/operations.md), as Prometheus does
// with its rule files:
//
//   - Each *.yaml or *.yml file that is not a unit test (*_test.yaml) and
//     not hidden holds one ruleset, named by its `ruleset:` field. A file
//     whose source changed is validated and compiled, then Put in the
//     registry (a Put of an unchanged source stores nothing, so instances
//     sharing the folder make one version).
//   - A file that fails keeps the running version of its ruleset: its
//     errors are logged as file:line:col and counted once per content.
//   - A ruleset whose file is removed (or whose file now names another
//     ruleset) is deleted from the registry. Rulesets no file of the folder
//     held since this DirSync started (uploaded through the API) are never
//     touched.
//   - Changes are picked up by watching the folder (fsnotify), debounced,
//     and by reading the whole folder each time, so that editors that save
//     by writing a temporary file and renaming it over the original, and
//     Kubernetes ConfigMap volumes that swap a symlink, work alike.
type DirSync struct {
	opts DirSyncOptions
	reg  *Registry
	log  *slog.Logger
	errs prometheus.Counter

	// Sync's goroutine only (Sync is not safe for concurrent use).
	files map[string]*dirFile // by path
	// owned are the rulesets the folder holds: the last good name of every
	// file. A name that leaves it is deleted.
	owned map[string]string // ruleset → file
}

// dirFile is what a sync made of one file.
type dirFile struct {
	sum     [sha256.Size]byte // content last seen
	handled bool              // sum was loaded or rejected for good
	ok      bool              // sum loaded
	dup     bool              // sum was rejected as a second file of a ruleset
	name    string            // ruleset of the last good content; "" none yet
}

// NewDirSync checks opts. It reads nothing yet.
func NewDirSync(opts DirSyncOptions) (*DirSync, error) {
	if opts.Dir == "" {
		return nil, errors.New("rules dir: no folder")
	}
	if opts.Registry == nil {
		return nil, errors.New("rules dir: no registry")
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultDirRetry
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultDirResync
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &DirSync{
		opts: opts,
		reg:  opts.Registry,
		log:  opts.Logger,
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "rules", Name: "file_errors_total", Help: fileErrorsHelpText,
		}),
		files: map[string]*dirFile{},
		owned: map[string]string{},
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(d.errs); err != nil {
			return nil, fmt.Errorf("rules dir: register metrics: %w", err)
		}
	}
	return d, nil
}

// SyncResult says what one Sync did.
type SyncResult struct {
	// Put are the rulesets stored (or found unchanged) from changed files.
	Put []string
	// Deleted are the rulesets deleted because no file holds them anymore.
	Deleted []string
	// Invalid maps each file that failed to load to its errors (a
	// rules.ErrorList for a ruleset that does not compile).
	Invalid map[string]error
}

// Sync reads the folder once and brings the registry up to it. Files that
// fail are in the result and logged; the error is only for what makes the
// sync incomplete (the folder cannot be read, the registry cannot be
// reached), after which a later Sync tries again.
func (d *DirSync) Sync(ctx context.Context) (SyncResult, error) {
	res := SyncResult{Invalid: map[string]error{}}
	paths, err := RulesetFiles(d.opts.Dir)
	if err != nil {
		return res, fmt.Errorf("rules dir: %w", err)
	}
	var errs []error
	present := make(map[string]bool, len(paths))
	claimed := map[string]string{} // ruleset → file, this sync
	// Unchanged files first: a file that holds a ruleset keeps it against
	// a file changed to name the same ruleset.
	type changed struct {
		path string
		src  []byte
		sum  [sha256.Size]byte
		f    *dirFile
	}
	var todo []changed
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // gone between listing and reading
			}
			errs = append(errs, fmt.Errorf("rules dir: %w", err))
		}
		present[path] = true
		f := d.files[path]
		if f == nil {
			f = &dirFile{}
			d.files[path] = f
		}
		sum := sha256.Sum256(src)
		if err != nil || f.handled && f.sum == sum {
			// Unreadable for now: as if unchanged.
			if f.name != "" {
				claimed[f.name] = path
			}
			continue
		}
		todo = append(todo, changed{path, src, sum, f})
	}
	for _, ch := range todo {
		path, src, sum, f := ch.path, ch.src, ch.sum, ch.f
		c, err := rules.Load(path, src, d.reg.copts)
		if err == nil {
			if list := RequireTopic(c); list != nil {
				err = list // the registry would refuse it: as invalid as a syntax error
			}
		}
		dup := false
		if err == nil {
			if other, ok := claimed[c.Name]; ok {
				dup = true
				err = rules.ErrorList{{Pos: rules.Pos{File: path}, Msg: fmt.Sprintf("ruleset %q is in %s already", c.Name, other)}}
			}
		}
		if err != nil {
			if !f.dup || f.sum != sum {
				d.reject(path, err)
			}
			res.Invalid[path] = err
			// A duplicate is looked at again by every sync: the other file
			// may go.
			f.sum, f.ok, f.handled, f.dup = sum, false, !dup, dup
			if _, taken := claimed[f.name]; f.name != "" && !taken {
				claimed[f.name] = path // its running version stays
			}
			continue
		}
		if _, err := d.reg.Put(ctx, c.Name, src); err != nil {
			// Not recorded as handled: the next sync puts it again.
			errs = append(errs, err)
			claimed[c.Name] = path
			if f.name != "" && f.name != c.Name {
				claimed[f.name] = path
			}
			continue
		}
		if f.name != "" && f.name != c.Name {
			d.log.Info("ruleset file now holds another ruleset", "file", path, "ruleset", c.Name, "was", f.name)
		}
		f.sum, f.ok, f.handled, f.dup, f.name = sum, true, true, false, c.Name
		claimed[c.Name] = path
		res.Put = append(res.Put, c.Name)
		d.log.Info("ruleset file loaded", "file", path, "ruleset", c.Name)
	}
	for path := range d.files {
		if !present[path] {
			delete(d.files, path)
		}
	}
	// Rulesets the folder held and holds no more go.
	var gone []string
	for name := range d.owned {
		if _, ok := claimed[name]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		err := d.reg.Delete(ctx, name)
		switch {
		case err == nil:
			res.Deleted = append(res.Deleted, name)
			d.log.Info("ruleset file removed: ruleset deleted", "ruleset", name, "file", d.owned[name])
		case errors.Is(err, ErrRulesetNotFound):
			// Deleted already (another instance, or the API).
		default:
			errs = append(errs, err)
			claimed[name] = d.owned[name] // retried by the next sync
		}
	}
	d.owned = claimed
	return res, errors.Join(errs...)
}

// reject logs a file's errors and counts it.
func (d *DirSync) reject(path string, err error) {
	d.errs.Inc()
	var list rules.ErrorList
	if !errors.As(err, &list) {
		d.log.Error("ruleset file rejected: the running version stays", "file", path, "err", err)
		return
	}
	for i, e := range list {
		if i == maxLoggedFileErrs {
			d.log.Error("ruleset file rejected: more errors", "file", path, "more", len(list)-i)
			break
		}
		d.log.Error("ruleset file rejected: the running version stays", "file", path, "err", e.Error())
	}
}

// Run watches the folder and syncs once the watch is in place (so that a
// change since the caller's Sync is not missed), after every change
// (debounced), after a failed sync (every Retry) and every Resync, until
// ctx ends; then it returns nil.
func (d *DirSync) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("rules dir: watch %s: %w", d.opts.Dir, err)
	}
	defer func() { _ = w.Close() }()
	if err := w.Add(d.opts.Dir); err != nil {
		return fmt.Errorf("rules dir: watch %s: %w", d.opts.Dir, err)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	reset := func(after time.Duration) {
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		timer.Reset(after)
	}
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if relevantEvent(ev) {
				reset(d.opts.Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow lost events: read the folder soon.
			d.log.Warn("rules dir: watch", "dir", d.opts.Dir, "err", err)
			reset(d.opts.Debounce)
		case <-timer.C:
			_, err := d.Sync(ctx)
			if ctx.Err() != nil {
				return nil
			}
			switch {
			case err != nil:
				if !failing {
					d.log.Warn("rules dir: sync incomplete; retrying", "dir", d.opts.Dir, "err", err)
				}
				failing = true
				timer.Reset(d.opts.Retry)
			default:
				if failing {
					d.log.Info("rules dir: in sync again", "dir", d.opts.Dir)
				}
				failing = false
				timer.Reset(d.opts.Resync)
			}
		}
	}
}

// relevantEvent reports whether ev may change what a sync reads: anything
// but a change of permissions, and not on a hidden file (an editor's swap
// file), except the ..data symlink a Kubernetes volume swaps.
func relevantEvent(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	base := filepath.Base(ev.Name)
	return !strings.HasPrefix(base, ".") || strings.HasPrefix(base, "..")
}

// RulesetFiles lists the ruleset files of dir as DirSync reads them,
// sorted: *.yaml and *.yml, not *_test.yaml (rule unit tests), not hidden
// (editors' swap files); symlinks are followed, folders left out.
func RulesetFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range entries {
		name := de.Name()
		ext := filepath.Ext(name)
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") || strings.HasSuffix(strings.TrimSuffix(name, ext), "_test") {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue // a dangling symlink or a folder
		}
		out = append(out, path)
	}
	slices.Sort(out)
	return out, nil
}
