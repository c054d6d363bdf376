package server

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/pagetoken"
)

// maxRecordingScan bounds the folder entries one ListRecordings call
// reads past its page token: a folder of many entries that are not
// recordings (subfolders, links out of the folder) ends a page early, with
// a token to go on, rather than hold the call.
const maxRecordingScan = 10_000

// recordingService implements shrikev1.RecordingServiceServer over the
// server's recordings folder (Options.RecordingsDir).
type recordingService struct {
	shrikev1.UnimplementedRecordingServiceServer
	s *Server
}

func (h *recordingService) ListRecordings(ctx context.Context, req *shrikev1.ListRecordingsRequest) (*shrikev1.ListRecordingsResponse, error) {
	n, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if h.s.opts.RecordingsDir == "" {
		return nil, errRecordingsDisabled
	}
	var after string
	if tok := req.GetPageToken(); tok != "" {
		if after, err = pagetoken.Decode(tok, "recordings", ""); err != nil {
			return nil, err
		}
	}
	return listRecordings(ctx, h.s.opts.RecordingsDir, n, after, maxRecordingScan)
}

// listRecordings lists a page of at most size regular files under dir,
// in fs.WalkDir's order, after the path after ("" for the first page),
// reading at most scan entries past it. The folder is read through an
// os.Root, as TestRuleset opens a recording: a symbolic link is listed as
// the file it leads to only when os.Root lets TestRuleset open it (inside
// the folder), and links to folders are not walked, so that the listing
// shows exactly what a request may name.
func listRecordings(ctx context.Context, dir string, size int, after string, scan int) (*shrikev1.ListRecordingsResponse, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("recordings folder: %w", err)
	}
	defer func() { _ = root.Close() }()
	fsys := root.FS()
	out := &shrikev1.ListRecordingsResponse{}
	// last is the last entry dealt with: where the next page goes on from
	// when this one ends before the walk does.
	var last string
	err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if path == "." {
			return err // the folder itself unreadable: the call fails
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if after != "" && !walksAfter(path, after) {
			// Before the token: skip, but descend into the folders that
			// hold it.
			if d.IsDir() && (path == after || strings.HasPrefix(after, path+"/")) {
				return nil
			}
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if scan == 0 {
			out.NextPageToken = pagetoken.Encode("recordings", "", last)
			return fs.SkipAll
		}
		scan--
		if err != nil {
			// A subfolder that cannot be read (permissions) is left
			// out; the rest of the listing stands.
			last = path
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, ok := recordingInfo(fsys, path, d)
		if ok {
			if len(out.Recordings) == size {
				out.NextPageToken = pagetoken.Encode("recordings", "", last)
				return fs.SkipAll
			}
			out.Recordings = append(out.Recordings, &shrikev1.Recording{
				Name:       path,
				SizeBytes:  info.Size(),
				ModifyTime: timestamp(info.ModTime()),
			})
		}
		last = path
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("recordings folder: %w", err)
	}
	return out, nil
}

// recordingInfo returns the file info of the walked entry d at path when
// it is a recording: a regular file, or a symbolic link that os.Root
// follows to a regular file inside the folder.
func recordingInfo(fsys fs.FS, path string, d fs.DirEntry) (fs.FileInfo, bool) {
	switch {
	case d.Type().IsRegular():
		info, err := d.Info()
		return info, err == nil
	case d.Type()&fs.ModeSymlink != 0:
		info, err := fs.Stat(fsys, path)
		if err != nil || !info.Mode().IsRegular() {
			return nil, false // leads out of the folder, nowhere, or to a folder
		}
		return info, true
	}
	return nil, false
}

// walksAfter reports whether fs.WalkDir visits path after prev: it
// orders paths by their elements, a folder before what it holds.
func walksAfter(path, prev string) bool {
	a, b := strings.Split(path, "/"), strings.Split(prev, "/")
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return len(a) > len(b)
}
