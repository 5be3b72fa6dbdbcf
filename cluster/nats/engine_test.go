package nats

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/cluster"
	"github.com/wsbroker/wsbroker/internal/enginetest"
	"github.com/wsbroker/wsbroker/internal/natstest"
)

// startEngine starts an engine on urls, waits until it is connected and closes it at cleanup.
func startEngine(t testing.TB, urls string, opts Options) (*Engine, *enginetest.Recorder) {
	t.Helper()
	e := newEngine(t, urls, opts)
	return e, enginetest.Connected(t, e)
}

// newStarted starts an engine on urls without waiting for it, and closes it at cleanup.
func newStarted(t testing.TB, urls string, opts Options) (*Engine, *enginetest.Recorder) {
	t.Helper()
	e := newEngine(t, urls, opts)
	return e, enginetest.Started(t, e)
}

func newEngine(t testing.TB, urls string, opts Options) *Engine {
	t.Helper()
	e, err := New(urls, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// serverSubscriptions returns the subjects s holds for e's connection, sorted.
func serverSubscriptions(t testing.TB, s *natstest.Server, e *Engine) []string {
	t.Helper()
	conn, err := e.connection()
	if err != nil {
		t.Fatal(err)
	}
	cid, err := conn.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	return s.Subscriptions(cid)
}

// waitInterest waits until s would deliver subject to want subscriptions: interest crosses a
// cluster's routes shortly after the subscription, with no event to wait for.
func waitInterest(t testing.TB, s *natstest.Server, subject string, want int) {
	t.Helper()
	for deadline := time.Now().Add(enginetest.WaitLimit); s.Interest(subject) != want; {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d subscriptions on %s, want %d", s.URL, s.Interest(subject), subject, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoundTrip(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	a, recA := startEngine(t, s.URL, Options{})
	b, recB := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, a, "wsb:c:both", "wsb:c:a only")
	enginetest.Subscribe(t, a, "wsb:c:both") // again: harmless
	enginetest.Subscribe(t, b, "wsb:c:both")
	if got := enginetest.Publish(t, b, cluster.Message{Topic: "wsb:c:a only", Data: []byte("one")}, cluster.Message{Topic: "wsb:c:both", Data: []byte("two")}); !slices.Equal(got, []int{-1, -1}) {
		t.Fatalf("receivers %v, want -1 each: NATS counts none", got)
	}
	msgs := recA.WaitMessages(t, 2)
	if msgs[0].Topic != "wsb:c:a only" || string(msgs[0].Data) != "one" || msgs[1].Topic != "wsb:c:both" || string(msgs[1].Data) != "two" {
		t.Fatalf("a received %q", msgs)
	}
	if want := []string{"wsb.c.a%20only", "wsb.c.both"}; !slices.Equal(serverSubscriptions(t, s, a), want) {
		t.Fatalf("the server holds %q for a, want %q", serverSubscriptions(t, s, a), want)
	}
	if err := a.Unsubscribe(enginetest.Context(t), []string{"wsb:c:both", "wsb:c:never subscribed"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"wsb.c.a%20only"}; !slices.Equal(serverSubscriptions(t, s, a), want) {
		t.Fatalf("after Unsubscribe the server holds %q for a, want %q", serverSubscriptions(t, s, a), want)
	}
	enginetest.Publish(t, a, cluster.Message{Topic: "wsb:c:both", Data: []byte("to b")}) // no echo: a's own message
	if m := recB.WaitMessages(t, 1); m[0].Topic != "wsb:c:both" || string(m[0].Data) != "to b" {
		t.Fatalf("b received %q", m)
	}
}

func TestHostileTopics(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	pub, _ := startEngine(t, s.URL, Options{})
	sub, rec := startEngine(t, s.URL, Options{})
	long := "wsb:c:" + strings.Repeat("x", 1100)
	topics := []string{
		"wsb:c:a.b", "wsb:c:a:b", "wsb:c:a%2Eb", "wsb:c:a%b", "wsb:c:*", "wsb:c:>", "wsb:c:a.*.>",
		"wsb:c: spaces ", "wsb:c:tab\there", "wsb:c:nul\x00", "wsb:c:", "wsb:c::", "wsb:c:%", "wsb:c:é\xff",
		"", ":", "wsb:n:7", "wsb:ctl", long + "1", long + "2", strings.Repeat(":", 600), strings.Repeat("%", 400),
	}
	enginetest.Subscribe(t, sub, topics...)
	var msgs []cluster.Message
	for i, topic := range topics {
		msgs = append(msgs, cluster.Message{Topic: topic, Data: []byte(strconv.Itoa(i))})
	}
	enginetest.Publish(t, pub, msgs...)
	// One more on the first topic: had any topic reached another's subscription too, the extra
	// delivery would arrive before it.
	enginetest.Publish(t, pub, cluster.Message{Topic: topics[0], Data: []byte("end")})
	got := rec.WaitMessages(t, len(msgs)+1)
	for i, m := range got[:len(msgs)] {
		if m.Topic != msgs[i].Topic || !bytes.Equal(m.Data, msgs[i].Data) {
			t.Fatalf("message %d: got %q on %q, want %q on %q", i, m.Data, m.Topic, msgs[i].Data, msgs[i].Topic)
		}
	}
	if last := got[len(msgs)]; last.Topic != topics[0] || string(last.Data) != "end" {
		t.Fatalf("after the hostile topics came %q on %q", last.Data, last.Topic)
	}
	if subjects := serverSubscriptions(t, s, sub); len(subjects) != len(topics) {
		t.Fatalf("the server holds %d subjects for %d topics", len(subjects), len(topics))
	}
}

func TestTenThousandTopics(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	pub, _ := startEngine(t, s.URL, Options{})
	sub, rec := startEngine(t, s.URL, Options{})
	const n = 10_000
	topics := make([]string, n)
	msgs := make([]cluster.Message, n)
	for i := range topics {
		topics[i] = "wsb:c:topic " + strconv.Itoa(i)
		msgs[i] = cluster.Message{Topic: topics[i], Data: []byte(strconv.Itoa(i))}
	}
	start := time.Now()
	enginetest.Subscribe(t, sub, topics...)
	t.Logf("subscribed %d topics in %v", n, time.Since(start))
	if got := len(serverSubscriptions(t, s, sub)); got != n {
		t.Fatalf("the server holds %d subscriptions, want %d", got, n)
	}
	enginetest.Publish(t, pub, msgs...)
	for i, m := range rec.WaitMessages(t, n) {
		if m.Topic != topics[i] || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d: %q on %q", i, m.Data, m.Topic)
		}
	}
	if err := sub.Unsubscribe(enginetest.Context(t), topics); err != nil {
		t.Fatal(err)
	}
	if got := serverSubscriptions(t, s, sub); len(got) != 0 {
		t.Fatalf("after Unsubscribe the server holds %d subscriptions", len(got))
	}
}

func TestOrderAcrossTwoTopics(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	pub, _ := startEngine(t, s.URL, Options{})
	sub, rec := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, sub, "wsb:c:even", "wsb:c:odd")
	const n = 10_000
	var batch []cluster.Message
	for i := 0; i < n; i++ {
		batch = append(batch, cluster.Message{Topic: []string{"wsb:c:even", "wsb:c:odd"}[i%2], Data: []byte(strconv.Itoa(i))})
		if len(batch) == 1+i%97 || i == n-1 { // batches of varying sizes
			enginetest.Publish(t, pub, batch...)
			batch = batch[:0]
		}
	}
	for i, m := range rec.WaitMessages(t, n) {
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q on %q", i, m.Data, m.Topic)
		}
	}
	if d := sub.Dropped(); d != 0 {
		t.Fatalf("%d dropped", d)
	}
}

func TestClaim(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	a, recA := startEngine(t, s.URL, Options{})
	b, _ := startEngine(t, s.URL, Options{})
	ctx := enginetest.Context(t)
	if alone, err := a.Claim(ctx, "wsb:n:7"); err != nil || !alone {
		t.Fatalf("first Claim: alone %v, %v", alone, err)
	}
	if alone, err := b.Claim(ctx, "wsb:n:7"); err != nil || alone {
		t.Fatalf("second Claim of a held slot: alone %v, %v", alone, err)
	}
	if alone, err := b.Claim(ctx, "wsb:n:8"); err != nil || !alone {
		t.Fatalf("Claim of a free slot: alone %v, %v", alone, err)
	}
	if err := b.Unsubscribe(ctx, []string{"wsb:n:7"}); err != nil {
		t.Fatal(err)
	}
	enginetest.Publish(t, b, cluster.Message{Topic: "wsb:n:7", Data: []byte("after")})
	if m := recA.WaitMessages(t, 1); string(m[0].Data) != "after" {
		t.Fatalf("the holder received %q: a claim question reached the handler", m[0].Data)
	}
}

func TestKillAndRestartUnderTraffic(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	pub, pubRec := startEngine(t, s.URL, Options{})
	sub, subRec := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, sub, "wsb:c:again", "wsb:c:not again")

	stop := enginetest.Traffic(pub, "wsb:c:again")
	subRec.WaitMessages(t, 100)
	s.Kill()
	enginetest.Lost(t, pubRec, subRec)
	stop()
	enginetest.FailFast(t, pub, sub, "wsb:c:again", "wsb:n:1", ErrNotConnected)

	s.Restart()
	enginetest.Recovered(t, pubRec, subRec)
	if got := serverSubscriptions(t, s, sub); len(got) != 0 {
		t.Fatalf("subscriptions survived the restart: %q", got)
	}
	enginetest.Subscribe(t, sub, "wsb:c:again")
	if want := []string{"wsb.c.again"}; !slices.Equal(serverSubscriptions(t, s, sub), want) {
		t.Fatalf("the server holds %q after resubscribing, want %q", serverSubscriptions(t, s, sub), want)
	}
	subRec.Reset()
	enginetest.Publish(t, pub, cluster.Message{Topic: "wsb:c:again", Data: []byte("after")})
	if m := subRec.WaitMessages(t, 1); string(m[0].Data) != "after" {
		t.Fatalf("received %q after recovery", m[0].Data)
	}
}

func TestClusterFailover(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	all := servers[0].URL + "," + servers[1].URL + "," + servers[2].URL
	sub, subRec := startEngine(t, all, Options{})
	onServer := func(e *Engine) int {
		conn, err := e.connection()
		if err != nil {
			t.Fatal(err)
		}
		return slices.IndexFunc(servers, func(s *natstest.Server) bool { return s.URL == conn.ConnectedUrl() })
	}
	killed := onServer(sub)
	other := (killed + 1) % 3
	pub, _ := startEngine(t, servers[other].URL, Options{})
	enginetest.Subscribe(t, sub, "wsb:c:across")
	waitInterest(t, servers[other], "wsb.c.across", 1)
	enginetest.Publish(t, pub, cluster.Message{Topic: "wsb:c:across", Data: []byte("one")})
	subRec.WaitMessages(t, 1)

	servers[killed].Kill()
	subRec.WaitState(t, false)
	subRec.WaitState(t, true)
	if now := onServer(sub); now == killed || now < 0 {
		t.Fatalf("reconnected to server %d, the one killed is %d", now, killed)
	}
	enginetest.Subscribe(t, sub, "wsb:c:across")
	waitInterest(t, servers[other], "wsb.c.across", 1)
	enginetest.Publish(t, pub, cluster.Message{Topic: "wsb:c:across", Data: []byte("two")})
	if m := subRec.WaitMessages(t, 2); string(m[1].Data) != "two" {
		t.Fatalf("after failover received %q", m[1].Data)
	}
}

func TestTokenOverTLS(t *testing.T) {
	s := natstest.Start(t, natstest.Options{TLS: true, Token: "t0ken-secret"})
	e, rec := startEngine(t, s.URL, Options{TLS: &tls.Config{RootCAs: s.CAs}})
	if strings.Contains(e.String(), "t0ken") || !strings.HasPrefix(e.String(), "tls://127.0.0.1:") {
		t.Fatalf("String() %q", e.String())
	}
	enginetest.Subscribe(t, e, "wsb:c:secure")
	other, _ := startEngine(t, s.URL, Options{TLS: &tls.Config{RootCAs: s.CAs}})
	enginetest.Publish(t, other, cluster.Message{Topic: "wsb:c:secure", Data: []byte("over TLS")})
	if m := rec.WaitMessages(t, 1); string(m[0].Data) != "over TLS" {
		t.Fatalf("received %q", m[0].Data)
	}
	_, untrusting := newStarted(t, s.URL, Options{})
	if st := untrusting.WaitState(t, false); !strings.Contains(st.Err.Error(), "certificate") || strings.Contains(st.Err.Error(), "t0ken") {
		t.Fatalf("a server certificate of an unknown CA reported as %v", st.Err)
	}
}

func TestUserPassword(t *testing.T) {
	const password = "pa55 w:rd@x"
	s := natstest.Start(t, natstest.Options{User: "node", Password: password})
	e, rec := startEngine(t, s.URL, Options{})
	if strings.Contains(e.String(), "pa55") || strings.Contains(e.String(), "node") {
		t.Fatalf("String() %q shows the credentials", e.String())
	}
	enginetest.Subscribe(t, e, "wsb:c:t")
	other, _ := startEngine(t, s.URL, Options{})
	enginetest.Publish(t, other, cluster.Message{Topic: "wsb:c:t", Data: []byte("ok")})
	rec.WaitMessages(t, 1)

	wrong := strings.Replace(s.URL, "pa55", "wrong-pa55", 1)
	_, rec = newStarted(t, wrong, Options{})
	st := rec.WaitState(t, false)
	if msg := st.Err.Error(); !strings.Contains(msg, "authorization failed") || strings.Contains(msg, "pa55") {
		t.Fatalf("wrong password reported as %q", msg)
	}
}

func TestMaxPayload(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	idle, err := New(s.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := idle.MaxPayload(); n != 0 {
		t.Fatalf("MaxPayload %d before Start", n)
	}
	pub, _ := startEngine(t, s.URL, Options{})
	sub, rec := startEngine(t, s.URL, Options{})
	max := pub.MaxPayload()
	if max != 1<<20 {
		t.Fatalf("MaxPayload %d, want the default 1 MiB", max)
	}
	enginetest.Subscribe(t, sub, "wsb:c:big")
	msgs := []cluster.Message{
		{Topic: "wsb:c:big", Data: make([]byte, max)},
		{Topic: "wsb:c:big", Data: make([]byte, max+1)},
		{Topic: "wsb:c:big", Data: []byte("after")},
	}
	sent, err := pub.Publish(enginetest.Context(t), msgs, make([]int, len(msgs)))
	if sent != 1 || !errors.Is(err, cluster.ErrTooLarge) {
		t.Fatalf("Publish of an oversized message: sent %d, %v", sent, err)
	}
	enginetest.Publish(t, pub, msgs[2:]...)
	got := rec.WaitMessages(t, 2)
	if len(got[0].Data) != max || string(got[1].Data) != "after" {
		t.Fatalf("received %d bytes, then %q", len(got[0].Data), got[1].Data)
	}
}

func TestUnreachableAtStart(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	s.Kill()
	_, rec := newStarted(t, s.URL, Options{})
	if st := rec.WaitState(t, false); !strings.Contains(st.Err.Error(), "connect") {
		t.Fatalf("the loss does not say it cannot connect: %v", st.Err)
	}
	s.Restart()
	rec.WaitState(t, true)
	rec.NoMoreStates(t)
}

func TestCloseLeavesNoGoroutine(t *testing.T) {
	s := natstest.Start(t, natstest.Options{})
	before := runtime.NumGoroutine()
	e, _ := startEngine(t, s.URL, Options{})
	enginetest.Subscribe(t, e, "wsb:c:t")
	enginetest.Publish(t, e, cluster.Message{Topic: "wsb:c:t", Data: []byte("x")})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitGoroutines(t, before)
	if _, err := e.Publish(enginetest.Context(t), []cluster.Message{{Topic: "wsb:c:t"}}, make([]int, 1)); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Publish after Close: %v", err)
	}

	// Closed while it retries against a server that is gone.
	retrying, rec := startEngine(t, s.URL, Options{})
	s.Kill()
	rec.WaitState(t, false)
	start := time.Now()
	if err := retrying.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Close took %v", took)
	}
	enginetest.WaitGoroutines(t, before)
}

// BenchmarkPublish publishes 64-byte messages in batches to a topic one other engine subscribes,
// over loopback TCP; msgs/s is the figure to read.
func BenchmarkPublish(b *testing.B) {
	s := natstest.Start(b, natstest.Options{})
	for _, size := range []int{1, 16, 256} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			pub, _ := startEngine(b, s.URL, Options{})
			sub, _ := startEngine(b, s.URL, Options{})
			enginetest.Subscribe(b, sub, "wsb:c:bench")
			msgs := make([]cluster.Message, size)
			for i := range msgs {
				msgs[i] = cluster.Message{Topic: "wsb:c:bench", Data: bytes.Repeat([]byte("x"), 64)}
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

// BenchmarkDelivery publishes one 64-byte message at a time and waits until the subscribing
// engine's handler has it: ns/op is the one-way delivery time through the server.
func BenchmarkDelivery(b *testing.B) {
	s := natstest.Start(b, natstest.Options{})
	pub, _ := startEngine(b, s.URL, Options{})
	sub, rec := startEngine(b, s.URL, Options{})
	enginetest.Subscribe(b, sub, "wsb:c:bench")
	msgs := []cluster.Message{{Topic: "wsb:c:bench", Data: bytes.Repeat([]byte("x"), 64)}}
	receivers := make([]int, 1)
	ctx := context.Background()
	n := 0
	for b.Loop() {
		if _, err := pub.Publish(ctx, msgs, receivers); err != nil {
			b.Fatal(err)
		}
		n++
		rec.WaitMessages(b, n)
	}
}
