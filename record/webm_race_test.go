package record

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestWebMFilesShareNothing opens and closes WebM files on several
// goroutines at once, as the recorder does for several students: under
// the race detector (make test's unit phase) it fails if the files share
// writer state. ebml-go's default segment info is a package variable that
// a writer with cues sets the duration in; each file now has its own.
func TestWebMFilesShareNothing(t *testing.T) {
	dir := t.TempDir()
	var bytes atomic.Uint64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			w, _, err := openWebM(filepath.Join(dir, fmt.Sprintf("%d.webm", i)), 320, 180, i%2 == 0, &bytes)
			if err != nil {
				t.Error(err)
				return
			}
			w.writeVideo(true, 0, []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00})
			w.writeVideo(false, int64(33*(i+1)), []byte{0x01, 0x02, 0x03})
			if err := w.close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if bytes.Load() == 0 {
		t.Fatal("nothing written")
	}
}
