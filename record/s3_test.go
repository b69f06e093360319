package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/sfu"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// weedVersion is the SeaweedFS that scripts/seaweedfs.sh builds; the
// two must name the same one.
const weedVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// S3 credentials the test store accepts (its s3.json).
const (
	s3Access = "invigil-test"
	s3Secret = "invigil-test-secret-0123456789"
	s3Bucket = "recordings"
)

// weedPath finds the weed binary scripts/seaweedfs.sh builds (once,
// outside the repository). Missing, the test fails in CI (CI=true, where
// scripts/install-test-deps.sh runs that script) and is skipped
// elsewhere.
func weedPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("INVIGIL_WEED")
	if path == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		path = filepath.Join(cache, "invigil", "weed-"+weedVersion, "weed")
	}
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("SeaweedFS's weed not at %s; scripts/seaweedfs.sh builds it (~5 min, once)", path)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// freePorts returns n ports free on 127.0.0.1 now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// seaweed is a SeaweedFS server (master, volume, filer, S3 gateway) the
// test started on loopback.
type seaweed struct {
	endpoint string // host:port of its S3 API
	s3Port   int
	ports    []int
}

// s3Endpoint picks the ports a seaweed will use, so a test can point a
// store at it before it runs.
func s3Endpoint(t *testing.T) *seaweed {
	ports := freePorts(t, 8)
	return &seaweed{endpoint: "127.0.0.1:" + strconv.Itoa(ports[6]), s3Port: ports[6], ports: ports}
}

// start runs weed server in t.TempDir() with one S3 identity, waits
// until the bucket can be made, and stops it by its PID when the test
// ends: SIGTERM, then SIGKILL after a grace period (it may ignore
// SIGTERM for seconds).
func (w *seaweed) start(t *testing.T) {
	t.Helper()
	bin := weedPath(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s3.json")
	os.WriteFile(cfg, []byte(`{"identities":[{"name":"invigil","credentials":[{"accessKey":"`+s3Access+`","secretKey":"`+s3Secret+
		`"}],"actions":["Admin","Read","Write","List","Tagging"]}]}`), 0o600)
	os.Mkdir(filepath.Join(dir, "data"), 0o700)
	p := w.ports
	args := []string{"server", "-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3", "-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + cfg,
		"-master.volumeSizeLimitMB=64", "-volume.max=0"}
	log, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			t.Logf("weed log (tail):\n%s", tail(string(b), 3000))
		}
	})
	cli := w.client(t)
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := cli.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{})
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			t.Fatalf("weed exited:\n%s", tail(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("SeaweedFS's S3 did not take a bucket within 90 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("SeaweedFS (pid %d) took a bucket %v after starting", cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
}

func (w *seaweed) client(t *testing.T) *minio.Client {
	cli, err := minio.New(w.endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func (w *seaweed) store(t *testing.T, prefix string) *S3Store {
	s, err := NewS3Store(S3Config{Endpoint: w.endpoint, Insecure: true, Bucket: s3Bucket, Prefix: prefix,
		AccessKey: s3Access, SecretKey: s3Secret})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// watchedStore passes every call to a real store and notes the order in
// which names were stored, and how long each took.
type watchedStore struct {
	Store
	mu    sync.Mutex // guards puts and took
	puts  []string
	took  []time.Duration
	bytes int64
}

func (w *watchedStore) Put(ctx context.Context, name, local string, size int64, sum string) error {
	start := time.Now()
	err := w.Store.Put(ctx, name, local, size, sum)
	if err == nil {
		w.mu.Lock()
		w.puts, w.took, w.bytes = append(w.puts, name), append(w.took, time.Since(start)), w.bytes+size
		w.mu.Unlock()
	}
	return err
}

// download copies every object under prefix into dir, keeping names.
func download(t *testing.T, s Store, prefix, dir string) {
	t.Helper()
	names, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		rc, err := s.Get(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(path), 0o750)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		f.Close()
	}
}

// waitUploaded waits until the recorder has stored want files and has
// none pending.
func waitUploaded(t *testing.T, r *Recorder, want uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := r.Stats()
		if st.Uploaded >= want && st.UploadPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads not done within 60 s: %+v, want %d stored", st, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestS3Upload: against a real S3-compatible server (SeaweedFS on
// loopback), a recorded session's segments are stored as they close and
// the manifest last; each local copy is gone once stored; the copy
// downloaded from the bucket verifies; the recorder lists and opens it
// from the store; retention deletes it from the bucket.
func TestS3Upload(t *testing.T) {
	w := s3Endpoint(t)
	w.start(t)
	store := &watchedStore{Store: w.store(t, "node-a/recordings")}
	local := t.TempDir()
	r, ev := newRecorderWith(t, Config{Dir: local, Segment: 4 * time.Second, Store: store})
	cam := newSource(sfu.KindVideo, "video/H264", "camera")
	mic := newSource(sfu.KindAudio, "audio/opus", "microphone")
	r.Record("exam-s", "kim", mic)
	r.Record("exam-s", "kim", cam)
	feedH264(t, cam, mic, 10, 0)
	ended := time.Now()
	close(cam.done)
	close(mic.done)

	// The files, then the manifest: at least 3 files for 10 s in 4 s
	// segments.
	deadline := time.Now().Add(60 * time.Second)
	for {
		store.mu.Lock()
		n := len(store.puts)
		last := ""
		if n > 0 {
			last = store.puts[n-1]
		}
		store.mu.Unlock()
		if strings.HasSuffix(last, ManifestSuffix) && r.Stats().UploadPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manifest was not stored within 60 s: %v", store.puts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	manifestStored := time.Since(ended)
	store.mu.Lock()
	puts := append([]string(nil), store.puts...)
	var slowest time.Duration
	for _, d := range store.took {
		slowest = max(slowest, d)
	}
	t.Logf("stored %d objects, %d bytes; slowest put+verify %v; manifest stored %v after the tracks ended",
		len(puts), store.bytes, slowest.Round(time.Millisecond), manifestStored.Round(time.Millisecond))
	store.mu.Unlock()
	if len(puts) < 4 {
		t.Fatalf("stored %v: want ≥ 3 segments and the manifest", puts)
	}
	for i, name := range puts {
		if strings.HasSuffix(name, ManifestSuffix) != (i == len(puts)-1) {
			t.Errorf("stored in the order %v: the manifest must be last, once", puts)
		}
		if !strings.HasPrefix(name, "exam-s/kim/") {
			t.Errorf("stored as %q, want exam-s/kim/…", name)
		}
	}
	if _, err := os.Stat(filepath.Join(local, "exam-s", "kim")); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(filepath.Join(local, "exam-s", "kim"))
		t.Errorf("the local copy is still there: %v (%v)", entries, err)
	}

	// Direct from the bucket, under the prefix: the same objects.
	n := 0
	for obj := range w.client(t).ListObjects(t.Context(), s3Bucket, minio.ListObjectsOptions{Prefix: "node-a/recordings/exam-s/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		n++
	}
	if n != len(puts) {
		t.Errorf("the bucket holds %d objects under the prefix, want %d", n, len(puts))
	}

	got := t.TempDir()
	download(t, store, "exam-s/", got)
	paths, _ := filepath.Glob(filepath.Join(got, "exam-s", "kim", "*"+ManifestSuffix))
	if len(paths) != 1 {
		t.Fatalf("downloaded manifests %v", paths)
	}
	m, problems := VerifyFile(paths[0], testTrust)
	if len(problems) > 0 || m == nil || len(m.Files) != len(puts)-1 {
		t.Fatalf("the downloaded copy: %v (%d files listed, %d stored)", problems, len(m.Files), len(puts)-1)
	}
	if errs := decodeErrors(t, filepath.Join(got, "exam-s", "kim", m.Files[0].Name)); errs != "" {
		t.Errorf("the downloaded first segment decodes with errors:\n%s", errs)
	}

	listed, err := r.List(t.Context(), "exam-s")
	if err != nil || len(listed) != 1 || listed[0].Session != m.Session {
		t.Fatalf("List from the store: %v, %+v", err, listed)
	}
	f, err := r.Open(t.Context(), "exam-s", "kim", m.Files[1].Name)
	if err != nil {
		t.Fatal(err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	f.Close()
	if err != nil || size != m.Files[1].Bytes {
		t.Errorf("Open from the store: size %d, %v; want %d", size, err, m.Files[1].Bytes)
	}

	if n, err := r.Prune(t.Context(), time.Now(), 24*time.Hour); n != 0 || err != nil {
		t.Fatalf("a fresh recording was pruned: %d, %v", n, err)
	}
	if n, err := r.Prune(t.Context(), time.Now().Add(25*time.Hour), 24*time.Hour); n != 1 || err != nil {
		t.Fatalf("pruned %d, %v; want 1 session from the store", n, err)
	}
	if left, err := store.List(t.Context(), ""); err != nil || len(left) != 0 {
		t.Errorf("left in the bucket after retention: %v, %v", left, err)
	}
	if k := ev.kinds(); k[len(k)-1] != EventDeleted {
		t.Errorf("events %v: want recording_deleted last", k)
	}
}

// TestS3UploadRetries: while the store is down, a finished session stays
// on disk, each failure is counted and reported as an audit event; Close
// gives up waiting after UploadDrain; the next recorder on the same
// directory stores what was left once the store is up, and removes it.
func TestS3UploadRetries(t *testing.T) {
	w := s3Endpoint(t) // not started yet
	local := t.TempDir()
	r, ev := newRecorderWith(t, Config{Dir: local, Segment: time.Hour, Store: w.store(t, ""), UploadDrain: 200 * time.Millisecond})
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	r.Record("exam-r", "lee", cam)
	feed(t, cam, nil, 3, 0, keepUp(t, r))
	close(cam.done)
	deadline := time.Now().Add(30 * time.Second)
	for !slicesContains(ev.kinds(), EventUploadFailed) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s event within 30 s: %v", EventUploadFailed, ev.kinds())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := r.Stats(); st.UploadFailures == 0 || st.UploadPending == 0 {
		t.Errorf("stats %+v: want failures counted and the file pending", st)
	}
	r.Close()
	left, _ := filepath.Glob(filepath.Join(local, "exam-r", "lee", "*"))
	if len(left) != 2 { // the segment and the manifest
		t.Fatalf("on disk after Close with the store down: %v", left)
	}

	w.start(t)
	r2, _ := newRecorderWith(t, Config{Dir: local, Store: w.store(t, "")})
	waitUploaded(t, r2, 2)
	if _, err := os.Stat(filepath.Join(local, "exam-r", "lee")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the local copy is still there after the store took it: %v", err)
	}
	got := t.TempDir()
	download(t, w.store(t, ""), "exam-r/", got)
	paths, _ := filepath.Glob(filepath.Join(got, "exam-r", "lee", "*"+ManifestSuffix))
	if len(paths) != 1 {
		t.Fatalf("downloaded manifests %v", paths)
	}
	if _, problems := VerifyFile(paths[0], testTrust); len(problems) > 0 {
		t.Errorf("the stored copy: %v", problems)
	}
}

// TestDiskStore: a directory store gets each file verified and the
// manifest last; the recordings directory is emptied.
func TestDiskStore(t *testing.T) {
	local, remote := t.TempDir(), t.TempDir()
	r, _ := newRecorderWith(t, Config{Dir: local, Segment: time.Hour, Store: &DiskStore{Root: remote}})
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	r.Record("exam-d", "max", cam)
	feed(t, cam, nil, 3, 0, keepUp(t, r))
	close(cam.done)
	waitUploaded(t, r, 2)
	paths, _ := filepath.Glob(filepath.Join(remote, "exam-d", "max", "*"+ManifestSuffix))
	if len(paths) != 1 {
		t.Fatalf("stored manifests %v", paths)
	}
	if _, problems := VerifyFile(paths[0], testTrust); len(problems) > 0 {
		t.Errorf("the stored copy: %v", problems)
	}
	if _, err := os.Stat(filepath.Join(local, "exam-d", "max")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the local copy is still there: %v", err)
	}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
