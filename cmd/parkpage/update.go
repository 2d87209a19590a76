package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	binenc "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parkpage/parkpage/internal/diskimage"
)

// cmdUpdate pushes a new appliance image to a running box: the image's
// root file system to the box's inactive root partition, its boot
// partition and boot loader, then a trial boot. The box keeps the new
// version once it is healthy and returns to the old one otherwise.
func cmdUpdate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("update", stderr)
	to := fs.String("to", "", "the box's admin URL, e.g. http://parkpage.local:8080")
	image := fs.String("image", "", "the new image (.img from `make image`)")
	token := fs.String("token", os.Getenv("PARKPAGE_TOKEN"), "bearer token (http.bearer_tokens; default $PARKPAGE_TOKEN)")
	pwFile := fs.String("password-file", "", "file holding the admin password (default: $PARKPAGE_PASSWORD, else asked on the terminal)")
	wait := fs.Duration("wait", 15*time.Minute, "how long to wait for the box to come back")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if *to == "" || *image == "" {
		fmt.Fprintln(stderr, "parkpage update: -to and -image are required")
		fs.Usage()
		return 2
	}
	c := &updateClient{base: strings.TrimRight(*to, "/"), token: *token, out: stdout}
	if c.token == "" {
		pw, err := adminPassword(*pwFile, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "parkpage update: %v\n", err)
			return 2
		}
		c.password = pw
	}
	if err := c.run(*image, *wait); err != nil {
		fmt.Fprintf(stderr, "parkpage update: %v\n", err)
		return 1
	}
	return 0
}

func adminPassword(file string, stderr io.Writer) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(firstLineOf(string(b)), "\r\n"), nil
	}
	if pw := os.Getenv("PARKPAGE_PASSWORD"); pw != "" {
		return pw, nil
	}
	fmt.Fprint(stderr, "admin password: ")
	if term.IsTerminal(int(os.Stdin.Fd())) {
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no admin password (-token, -password-file, $PARKPAGE_TOKEN or $PARKPAGE_PASSWORD)")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

type updateClient struct {
	base, token, password string
	out                   io.Writer
}

func (c *updateClient) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	} else {
		req.SetBasicAuth("admin", c.password)
	}
	return req, nil
}

func (c *updateClient) do(ctx context.Context, method, path string, body io.Reader, hdr map[string]string, v any) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		// Every state-changing API request says its type (JSON unless
		// hdr says otherwise: the image parts are octet streams).
		req.Header.Set("Content-Type", "application/json")
	}
	for k, val := range hdr {
		req.Header.Set(k, val)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(b)))
	}
	if v != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}

func (c *updateClient) version(ctx context.Context) (string, error) {
	var st struct {
		Version string `json:"version"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, nil, &st)
	return st.Version, err
}

func (c *updateClient) run(image string, wait time.Duration) error {
	parts, err := imageParts(image)
	if err != nil {
		return err
	}
	ctx := context.Background()
	old, err := c.version(ctx)
	if err != nil {
		return fmt.Errorf("the box does not answer: %w", err)
	}
	var st struct {
		TrialBoot bool `json:"trial_boot"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/update", nil, nil, &st); err != nil {
		return fmt.Errorf("the box has no update API (version %s): %w", old, err)
	}
	fmt.Fprintf(c.out, "box at %s runs version %s\n", c.base, old)
	if n := c.parked(ctx); n > 0 {
		fmt.Fprintf(c.out, "%d %s parked: %s silence while the box reboots and %s taken over by the new version if it answers within park.resume_within (else %s a BYE); `parkpage drain` first rings them back to their parkers instead\n",
			n, plural(n, "call is", "calls are"), plural(n, "its caller hears", "their callers hear"), plural(n, "it is", "they are"), plural(n, "it gets", "they get"))
	}
	for _, p := range parts {
		start := time.Now()
		if err := c.push(ctx, p); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "sent %s: %d MiB in %v\n", p.name, p.size>>20, time.Since(start).Round(100*time.Millisecond))
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/update/apply", nil, nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(c.out, "the box reboots into the new version; it keeps it once healthy, else returns to", old)
	// Wait for the box to go away and answer again.
	deadline := time.Now().Add(wait)
	gone := false
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := c.version(cctx)
		cancel()
		switch {
		case err != nil:
			gone = true
		case gone && v != old:
			fmt.Fprintf(c.out, "box runs version %s (was %s)\n", v, old)
			return nil
		case gone:
			return fmt.Errorf("the box came back on version %s: the update did not become healthy and was rolled back", v)
		}
		time.Sleep(2 * time.Second)
	}
	return fmt.Errorf("the box did not come back within %v", wait)
}

// parked is the number of calls in the box's slots (parked or ringing
// back); 0 when the box does not say.
func (c *updateClient) parked(ctx context.Context) int {
	var st struct {
		Slots []struct {
			State string `json:"state"`
		} `json:"slots"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/slots", nil, nil, &st); err != nil {
		return 0
	}
	n := 0
	for _, s := range st.Slots {
		if s.State != "" && s.State != "free" {
			n++
		}
	}
	return n
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// imagePart is one piece of an image sent to the box.
type imagePart struct {
	name      string
	path      string
	off, size int64
	sha256    string
}

// imageParts finds the root file system (root A, trimmed to the
// squashfs), the boot partition and the boot loader in a gokrazy image.
func imageParts(path string) ([]imagePart, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ps, err := diskimage.Of(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(ps) < 4 {
		return nil, fmt.Errorf("%s: %d partitions, want boot, root A, root B, perm (an image from `make image`)", path, len(ps))
	}
	sb := make([]byte, 96)
	if _, err := f.ReadAt(sb, ps[1].Start); err != nil {
		return nil, err
	}
	if string(sb[:4]) != "hsqs" {
		return nil, fmt.Errorf("%s: partition 2 holds no squashfs root file system", path)
	}
	rootSize := int64(binenc.LittleEndian.Uint64(sb[40:])) // bytes_used
	rootSize = (rootSize + 4095) &^ 4095
	if rootSize > ps[1].Size {
		return nil, fmt.Errorf("%s: squashfs of %d bytes in a %d-byte partition", path, rootSize, ps[1].Size)
	}
	out := []imagePart{
		{name: "root", path: path, off: ps[1].Start, size: rootSize},
		{name: "boot", path: path, off: ps[0].Start, size: ps[0].Size},
		{name: "mbr", path: path, off: 0, size: 446},
	}
	for i := range out {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, out[i].off, out[i].size)); err != nil {
			return nil, err
		}
		out[i].sha256 = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

// push sends one part gzip-compressed and checks the box wrote what was
// sent.
func (c *updateClient) push(ctx context.Context, p imagePart) error {
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		_, err := io.Copy(zw, io.NewSectionReader(f, p.off, p.size))
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	var res struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	if err := c.do(ctx, http.MethodPut, "/api/v1/update/"+p.name, pr, map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}, &res); err != nil {
		return err
	}
	if res.SHA256 != p.sha256 || res.Bytes != p.size {
		return fmt.Errorf("%s: the box wrote %d bytes (sha256 %s), sent %d (sha256 %s)", p.name, res.Bytes, res.SHA256, p.size, p.sha256)
	}
	return nil
}
