package redis

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/cluster"
	"github.com/wsbroker/wsbroker/internal/enginetest"
	"github.com/wsbroker/wsbroker/internal/redistest"
)

// startEngine starts an engine on url, waits until it is connected and closes it at cleanup.
func startEngine(t testing.TB, url string, opts Options) (*Engine, *enginetest.Recorder) {
	t.Helper()
	e := newEngine(t, url, opts)
	return e, enginetest.Connected(t, e)
}

// newStarted starts an engine on url without waiting for it, and closes it at cleanup.
func newStarted(t testing.TB, url string, opts Options) (*Engine, *enginetest.Recorder) {
	t.Helper()
	e := newEngine(t, url, opts)
	return e, enginetest.Started(t, e)
}

func newEngine(t testing.TB, url string, opts Options) *Engine {
	t.Helper()
	e, err := New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRoundTripAndReceivers(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	a, recA := startEngine(t, s.URL, Options{})
	b, recB := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, a, "both", "a only")
	enginetest.Subscribe(t, b, "both")
	got := enginetest.Publish(t, a,
		cluster.Message{Topic: "both", Data: []byte("one")},
		cluster.Message{Topic: "a only", Data: []byte("two")},
		cluster.Message{Topic: "nobody", Data: []byte("three")})
	if want := []int{2, 1, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("receivers %v, want %v", got, want)
	}
	msgs := recA.WaitMessages(t, 2)
	if msgs[0].Topic != "both" || string(msgs[0].Data) != "one" || msgs[1].Topic != "a only" || string(msgs[1].Data) != "two" {
		t.Fatalf("a received %q", msgs)
	}
	if msgs := recB.WaitMessages(t, 1); msgs[0].Topic != "both" || string(msgs[0].Data) != "one" {
		t.Fatalf("b received %q", msgs)
	}
	if err := a.Unsubscribe(enginetest.Context(t), []string{"both", "never subscribed"}); err != nil {
		t.Fatal(err)
	}
	if got := enginetest.Publish(t, b, cluster.Message{Topic: "both", Data: []byte("four")}); got[0] != 1 {
		t.Fatalf("after a unsubscribed, %d receivers", got[0])
	}
}

func TestBinaryTopics(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	e, rec := startEngine(t, s.URL, Options{})
	long := make([]byte, 2048)
	for i := range long {
		long[i] = byte(i)
	}
	topics := []string{"", "nul\x00inside", " spaces around ", "\r\n*3\r\n$7\r\nPUBLISH\r\n", "wsb:c:*?[]", "é\xff\xfe", string(long)}
	enginetest.Subscribe(t, e, topics...)
	var msgs []cluster.Message
	for i, topic := range topics {
		msgs = append(msgs, cluster.Message{Topic: topic, Data: []byte("\x00data\r\n" + strconv.Itoa(i))})
	}
	msgs = append(msgs, cluster.Message{Topic: "nul\x00inside", Data: nil})
	for i, n := range enginetest.Publish(t, e, msgs...) {
		if n != 1 {
			t.Fatalf("message %d on topic %q had %d receivers", i, msgs[i].Topic, n)
		}
	}
	for i, m := range rec.WaitMessages(t, len(msgs)) {
		if m.Topic != msgs[i].Topic || !bytes.Equal(m.Data, msgs[i].Data) {
			t.Fatalf("message %d: got %q on %q, want %q on %q", i, m.Data, m.Topic, msgs[i].Data, msgs[i].Topic)
		}
	}
}

func TestTenThousandTopicsInBatches(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	e, rec := startEngine(t, s.URL, Options{})
	const n = 10_000
	topics := make([]string, n)
	msgs := make([]cluster.Message, n)
	for i := range topics {
		topics[i] = "topic:" + strconv.Itoa(i)
		msgs[i] = cluster.Message{Topic: topics[i], Data: []byte(strconv.Itoa(i))}
	}
	enginetest.Subscribe(t, e, topics...)
	if calls, want := commandCalls(t, s, "subscribe"), 1+(n+subscribeBatch-1)/subscribeBatch; calls != want {
		t.Fatalf("SUBSCRIBE was called %d times (probe included), want %d", calls, want)
	}
	for i, r := range enginetest.Publish(t, e, msgs...) {
		if r != 1 {
			t.Fatalf("topic %d had %d receivers", i, r)
		}
	}
	for i, m := range rec.WaitMessages(t, n) {
		if m.Topic != topics[i] || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d: %q on %q", i, m.Data, m.Topic)
		}
	}
	if err := e.Unsubscribe(enginetest.Context(t), topics); err != nil {
		t.Fatal(err)
	}
	if got := enginetest.Publish(t, e, msgs[:1]...); got[0] != 0 {
		t.Fatalf("after Unsubscribe, %d receivers", got[0])
	}
}

func TestOrderOfTenThousand(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TCP: true})
	pub, _ := startEngine(t, s.URL, Options{})
	sub, rec := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, sub, "ordered")
	const n = 10_000
	var batch []cluster.Message
	for i := 0; i < n; i++ {
		batch = append(batch, cluster.Message{Topic: "ordered", Data: []byte(strconv.Itoa(i))})
		if len(batch) == 1+i%97 || i == n-1 { // batches of varying sizes
			enginetest.Publish(t, pub, batch...)
			batch = batch[:0]
		}
	}
	for i, m := range rec.WaitMessages(t, n) {
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.Data)
		}
	}
}

func TestClaim(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	a, _ := startEngine(t, s.URL, Options{})
	b, _ := startEngine(t, s.URL, Options{})
	ctx := enginetest.Context(t)
	if alone, err := a.Claim(ctx, "slot:7"); err != nil || !alone {
		t.Fatalf("first Claim: alone %v, %v", alone, err)
	}
	if alone, err := b.Claim(ctx, "slot:7"); err != nil || alone {
		t.Fatalf("second Claim of a held slot: alone %v, %v", alone, err)
	}
	if alone, err := b.Claim(ctx, "slot:8"); err != nil || !alone {
		t.Fatalf("Claim of a free slot: alone %v, %v", alone, err)
	}
}

func TestKillAndRestartUnderTraffic(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TCP: true})
	pub, pubRec := startEngine(t, s.URL, Options{})
	sub, subRec := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, sub, "traffic")

	stop := enginetest.Traffic(pub, "traffic")
	subRec.WaitMessages(t, 100)
	s.Kill()
	enginetest.Lost(t, pubRec, subRec)
	stop()
	enginetest.FailFast(t, pub, sub, "traffic", "slot", ErrNotConnected)

	s.Restart()
	enginetest.Recovered(t, pubRec, subRec)
	subRec.Reset()
	if got := enginetest.Publish(t, pub, cluster.Message{Topic: "traffic", Data: []byte("lost")}); got[0] != 0 {
		t.Fatalf("a subscription survived the restart: %d receivers", got[0])
	}
	enginetest.Subscribe(t, sub, "traffic")
	if got := enginetest.Publish(t, pub, cluster.Message{Topic: "traffic", Data: []byte("after")}); got[0] != 1 {
		t.Fatalf("after resubscribing, %d receivers", got[0])
	}
	if m := subRec.WaitMessages(t, 1); string(m[0].Data) != "after" {
		t.Fatalf("received %q after recovery", m[0].Data)
	}
}

func TestSubscribeConnectionKilled(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	e, rec := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, e, "t")
	s.CLI(t, "CLIENT", "KILL", "TYPE", "pubsub")
	rec.WaitState(t, false)
	rec.WaitState(t, true)
	rec.NoMoreStates(t)
	enginetest.Subscribe(t, e, "t")
	enginetest.Publish(t, e, cluster.Message{Topic: "t", Data: []byte("again")})
	if m := rec.WaitMessages(t, 1); string(m[0].Data) != "again" {
		t.Fatalf("received %q", m[0].Data)
	}
}

func TestUnreachableAtStart(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	s.Kill()
	_, rec := newStarted(t, s.URL, Options{})
	if st := rec.WaitState(t, false); !strings.Contains(st.Err.Error(), "connect") {
		t.Fatalf("the loss does not say it cannot connect: %v", st.Err)
	}
	s.Restart()
	rec.WaitState(t, true)
	rec.NoMoreStates(t)
}

func TestPassword(t *testing.T) {
	const password = "pa55 w:rd@x"
	s := redistest.Start(t, redistest.Options{Password: password})
	e, rec := startEngine(t, s.URL, Options{})
	if strings.Contains(e.String(), "pa55") {
		t.Fatalf("String() %q shows the password", e.String())
	}
	enginetest.Subscribe(t, e, "t")
	enginetest.Publish(t, e, cluster.Message{Topic: "t", Data: []byte("ok")})
	rec.WaitMessages(t, 1)

	wrong := strings.Replace(s.URL, "pa55", "wrong-pa55", 1)
	_, rec = newStarted(t, wrong, Options{})
	st := rec.WaitState(t, false)
	if msg := st.Err.Error(); !strings.Contains(msg, "authentication failed") || strings.Contains(msg, "pa55") {
		t.Fatalf("wrong password reported as %q", msg)
	}
}

// A SUBSCRIBE or PUBLISH that Redis refuses (here its ACL) fails that call with Redis's words;
// the connection stays up, and the calls before and after it succeed.
func TestRefusedCommandFailsOnlyThatCall(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	s.CLI(t, "ACL", "SETUSER", "limited", "on", ">pw", "resetchannels", "&allowed:*", "&"+probeTopicPrefix+"*", "+@all", "~*")
	url := strings.Replace(s.URL, "unix://", "unix://limited:pw@", 1)
	e, rec := startEngine(t, url, Options{})
	enginetest.Subscribe(t, e, "allowed:1")
	err := e.Subscribe(enginetest.Context(t), []string{"allowed:2", "denied"})
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("subscribing a denied channel: %v, want Redis's NOPERM", err)
	}
	enginetest.Subscribe(t, e, "allowed:3")
	got := enginetest.Publish(t, e, cluster.Message{Topic: "allowed:1", Data: []byte("1")},
		cluster.Message{Topic: "allowed:2", Data: []byte("2")}, cluster.Message{Topic: "allowed:3", Data: []byte("3")})
	if got[0] != 1 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("receivers %v, want [1 0 1]", got)
	}
	if m := rec.WaitMessages(t, 2); m[0].Topic != "allowed:1" || m[1].Topic != "allowed:3" {
		t.Fatalf("received %v", m)
	}
	// A refused PUBLISH in a pipeline: Redis carries out the others, so all count as sent (a
	// publisher that sent the third again would duplicate it) and the refused one says so.
	msgs := []cluster.Message{{Topic: "allowed:1", Data: []byte("4")}, {Topic: "denied"}, {Topic: "allowed:3", Data: []byte("5")}}
	receivers := make([]int, len(msgs))
	sent, err := e.Publish(enginetest.Context(t), msgs, receivers)
	if sent != 3 || !errors.Is(err, cluster.ErrRefused) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("publishing to a denied channel: sent %d, %v; want 3 and Redis's NOPERM as ErrRefused", sent, err)
	}
	if want := []int{1, cluster.Refused, 1}; !slices.Equal(receivers, want) {
		t.Fatalf("receivers %v, want %v", receivers, want)
	}
	if m := rec.WaitMessages(t, 4)[2:]; string(m[0].Data) != "4" || string(m[1].Data) != "5" {
		t.Fatalf("received %v", m)
	}
	rec.NoMoreStates(t)
}

func TestTLS(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TLS: true})
	e, rec := startEngine(t, s.URL, Options{TLS: &tls.Config{RootCAs: s.CAs}})
	enginetest.Subscribe(t, e, "secure")
	enginetest.Publish(t, e, cluster.Message{Topic: "secure", Data: []byte("over TLS")})
	if m := rec.WaitMessages(t, 1); string(m[0].Data) != "over TLS" {
		t.Fatalf("received %q", m[0].Data)
	}
	_, untrusting := newStarted(t, s.URL, Options{})
	if st := untrusting.WaitState(t, false); !strings.Contains(st.Err.Error(), "certificate") {
		t.Fatalf("a server certificate of an unknown CA reported as %v", st.Err)
	}
}

func TestUnixURLWithPasswordAndDB(t *testing.T) {
	s := redistest.Start(t, redistest.Options{Password: "secret"})
	if !strings.HasPrefix(s.URL, "unix://") {
		t.Fatalf("not a Unix socket URL: %s", s.URL)
	}
	e, rec := startEngine(t, s.URL+"?db=3", Options{})
	if want := "unix://" + strings.SplitN(s.URL, "@", 2)[1] + "?db=3"; e.String() != want {
		t.Fatalf("String() %q, want %q", e.String(), want)
	}
	enginetest.Subscribe(t, e, "local")
	enginetest.Publish(t, e, cluster.Message{Topic: "local", Data: []byte("via socket")})
	rec.WaitMessages(t, 1)
}

func TestProbeDetectsFrozenServer(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	opts := Options{ProbeAfter: 200 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, DialTimeout: 300 * time.Millisecond}
	e, rec := startEngine(t, s.URL, opts)
	enginetest.Subscribe(t, e, "t")
	s.Pause()
	st := rec.WaitState(t, false)
	s.Resume()
	t.Logf("frozen server reported as: %v", st.Err)
	rec.WaitState(t, true)
	enginetest.Subscribe(t, e, "t")
	enginetest.Publish(t, e, cluster.Message{Topic: "t", Data: []byte("back")})
	rec.WaitMessages(t, 1)
}

func TestProbeKeepsQuietConnection(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	quiet, rec := startEngine(t, s.URL, Options{ProbeAfter: 20 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond})
	watcher, probes := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, watcher, quiet.probeTopic)
	probes.WaitMessages(t, 5) // five probes of a connection that receives nothing else
	rec.NoMoreStates(t)
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	before := runtime.NumGoroutine()
	e, _ := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, e, "t")
	enginetest.Publish(t, e, cluster.Message{Topic: "t", Data: []byte("x")})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitGoroutines(t, before)
	if _, err := e.Publish(enginetest.Context(t), []cluster.Message{{Topic: "t"}}, make([]int, 1)); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Publish after Close: %v", err)
	}

	// Closed while it waits to retry against a server that is gone, then while it logs in to one
	// that does not answer.
	retrying, rec := startEngine(t, s.URL, Options{})
	s.Kill()
	rec.WaitState(t, false)
	closePromptly(t, retrying)
	enginetest.WaitGoroutines(t, before)
	s.Restart()
	s.Pause()
	loggingIn, _ := newStarted(t, s.URL, Options{DialTimeout: enginetest.WaitLimit})
	closePromptly(t, loggingIn)
	s.Resume()
	enginetest.WaitGoroutines(t, before)
}

// closePromptly closes e and fails if that took longer than a second.
func closePromptly(t *testing.T, e *Engine) {
	t.Helper()
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %v", took)
	}
}

// commandCalls reads how often the server ran command, from INFO commandstats.
func commandCalls(t testing.TB, s *redistest.Server, command string) int {
	t.Helper()
	for _, line := range strings.Split(s.CLI(t, "INFO", "commandstats"), "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+command+":calls="); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// BenchmarkPublish publishes 64-byte messages in batches to a topic one other engine subscribes,
// over loopback TCP; msgs/s is the figure to read.
func BenchmarkPublish(b *testing.B) {
	s := redistest.Start(b, redistest.Options{TCP: true})
	for _, size := range []int{1, 16, 256} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			pub, _ := startEngine(b, s.URL, Options{})
			sub, _ := startEngine(b, s.URL, Options{})
			enginetest.Subscribe(b, sub, "bench")
			msgs := make([]cluster.Message, size)
			for i := range msgs {
				msgs[i] = cluster.Message{Topic: "bench", Data: bytes.Repeat([]byte("x"), 64)}
			}
			receivers := make([]int, size)
			ctx := context.Background()
			b.SetBytes(int64(64 * size))
			for b.Loop() {
				if _, err := pub.Publish(ctx, msgs, receivers); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
