// Command go-tlog-verify checks a C2SP tlog-tiles log with Go's own
// transparency-log code (golang.org/x/mod/sumdb/tlog and sumdb/note), as an
// implementation independent of Regis: it verifies the checkpoint signature,
// recomputes the root through tlog's verifying tile reader, checks every
// entry bundle against the level-0 tiles, and checks inclusion and
// consistency proofs that tlog computes from the tiles.
//
// Go's tile paths carry the tile height (tile/8/L/N); C2SP's do not
// (tile/L/N): this program maps one to the other.
//
// Build offline with Debian's packages:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-tlog-verify .
//
// Usage: go-tlog-verify -url PREFIX -key VKEY [-origin ORIGIN] [-samples N]
package main

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tileHeight = 8

var client = &http.Client{Timeout: 30 * time.Second}

func fetch(url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<24))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// c2spPath maps Go's tile path to the C2SP one.
func c2spPath(t tlog.Tile) (string, error) {
	path := t.Path()
	prefix := fmt.Sprintf("tile/%d/", tileHeight)
	if !strings.HasPrefix(path, prefix) {
		return "", fmt.Errorf("unexpected tile path %q", path)
	}
	rest := strings.TrimPrefix(path, prefix)
	if strings.HasPrefix(rest, "data/") {
		return "tile/entries/" + strings.TrimPrefix(rest, "data/"), nil
	}
	return "tile/" + rest, nil
}

type tileReader struct{ prefix string }

func (r tileReader) Height() int { return tileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		path, err := c2spPath(t)
		if err != nil {
			return nil, err
		}
		body, err := fetch(r.prefix + "/" + path)
		if err != nil {
			return nil, err
		}
		if len(body) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(body), t.W*tlog.HashSize)
		}
		data[i] = body
	}
	return data, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// parseCheckpoint reads the C2SP checkpoint body: origin, size, root.
func parseCheckpoint(text string) (string, tlog.Tree, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return "", tlog.Tree{}, errors.New("checkpoint has fewer than three lines")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return "", tlog.Tree{}, fmt.Errorf("bad tree size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return "", tlog.Tree{}, fmt.Errorf("bad root hash %q", lines[2])
	}
	var tree tlog.Tree
	tree.N = n
	copy(tree.Hash[:], root)
	return lines[0], tree, nil
}

// bundleEntries splits a C2SP entry bundle: big-endian uint16 length, bytes.
func bundleEntries(bundle []byte) ([][]byte, error) {
	var entries [][]byte
	for len(bundle) > 0 {
		if len(bundle) < 2 {
			return nil, errors.New("bundle truncated in a length prefix")
		}
		n := int(binary.BigEndian.Uint16(bundle))
		if len(bundle) < 2+n {
			return nil, errors.New("bundle truncated in an entry")
		}
		entries = append(entries, bundle[2:2+n])
		bundle = bundle[2+n:]
	}
	return entries, nil
}

// samples picks up to k values in [lo, hi), spread evenly, ends included.
func samples(lo, hi int64, k int) []int64 {
	if hi <= lo {
		return nil
	}
	if hi-lo <= int64(k) {
		out := make([]int64, 0, hi-lo)
		for i := lo; i < hi; i++ {
			out = append(out, i)
		}
		return out
	}
	out := make([]int64, 0, k)
	for j := 0; j < k; j++ {
		out = append(out, lo+(hi-1-lo)*int64(j)/int64(k-1))
	}
	return out
}

func run() error {
	prefix := flag.String("url", "", "log prefix (the folder holding checkpoint and tile/)")
	vkey := flag.String("key", "", "the log's verifier key name+hash+base64")
	origin := flag.String("origin", "", "expected checkpoint origin (default: the key name)")
	k := flag.Int("samples", 64, "inclusion and consistency proofs to check")
	flag.Parse()
	if *prefix == "" || *vkey == "" {
		return errors.New("usage: go-tlog-verify -url PREFIX -key VKEY [-origin ORIGIN] [-samples N]")
	}
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %v", err)
	}
	if *origin == "" {
		*origin = verifier.Name()
	}

	msg, err := fetch(*prefix + "/checkpoint")
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("checkpoint signature: %v", err)
	}
	gotOrigin, tree, err := parseCheckpoint(n.Text)
	if err != nil {
		return err
	}
	if gotOrigin != *origin {
		return fmt.Errorf("checkpoint origin %q, want %q", gotOrigin, *origin)
	}
	fmt.Printf("checkpoint: %s, size %d, root %s, signature ok\n", gotOrigin, tree.N, tree.Hash)

	reader := tlog.TileHashReader(tree, tileReader{*prefix})
	root, err := tlog.TreeHash(tree.N, reader)
	if err != nil {
		return fmt.Errorf("recomputing the root from tiles: %v", err)
	}
	if root != tree.Hash {
		return fmt.Errorf("root from tiles %s, checkpoint says %s", root, tree.Hash)
	}
	fmt.Println("root recomputed from tiles: ok")

	// Every entry bundle against the authenticated level-0 hashes.
	for start := int64(0); start < tree.N; start += 256 {
		width := tree.N - start
		if width > 256 {
			width = 256
		}
		t := tlog.Tile{H: tileHeight, L: -1, N: start / 256, W: int(width)}
		path, err := c2spPath(t)
		if err != nil {
			return err
		}
		bundle, err := fetch(*prefix + "/" + path)
		if err != nil {
			return err
		}
		entries, err := bundleEntries(bundle)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		if int64(len(entries)) != width {
			return fmt.Errorf("%s: %d entries, want %d", path, len(entries), width)
		}
		indexes := make([]int64, width)
		for i := range indexes {
			indexes[i] = tlog.StoredHashIndex(0, start+int64(i))
		}
		hashes, err := reader.ReadHashes(indexes)
		if err != nil {
			return err
		}
		for i, entry := range entries {
			if tlog.RecordHash(entry) != hashes[i] {
				return fmt.Errorf("entry %d in %s does not hash to its leaf", start+int64(i), path)
			}
		}
	}
	fmt.Printf("entries: all %d hash to their tile leaves\n", tree.N)

	for _, i := range samples(0, tree.N, *k) {
		proof, err := tlog.ProveRecord(tree.N, i, reader)
		if err != nil {
			return fmt.Errorf("inclusion proof of %d: %v", i, err)
		}
		leaf, err := reader.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
		if err != nil {
			return err
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, i, leaf[0]); err != nil {
			return fmt.Errorf("inclusion of %d: %v", i, err)
		}
	}
	for _, m := range samples(1, tree.N+1, *k) {
		old, err := tlog.TreeHash(m, reader)
		if err != nil {
			return err
		}
		proof, err := tlog.ProveTree(tree.N, m, reader)
		if err != nil {
			return fmt.Errorf("consistency proof %d->%d: %v", m, tree.N, err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, m, old); err != nil {
			return fmt.Errorf("consistency %d->%d: %v", m, tree.N, err)
		}
	}
	fmt.Println("inclusion and consistency proofs: ok")
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "go-tlog-verify:", err)
		os.Exit(1)
	}
}
