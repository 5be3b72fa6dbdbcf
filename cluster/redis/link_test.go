package redis

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// readAll runs a subscriber's reader over stream (what Redis would send) with one SUBSCRIBE of
// topics waiting, and returns the messages delivered and the command's outcome.
func readAll(t testing.TB, stream []byte, topics []string) (msgs [][2]string, cmdErr error) {
	t.Helper()
	client, server := net.Pipe()
	l := newLink(client, time.Second)
	go l.readSubscribed(func(topic string, data []byte) { msgs = append(msgs, [2]string{topic, string(data)}) })
	outcome := make(chan error, 1)
	go func() { outcome <- l.subscribeCommand(context.Background(), "SUBSCRIBE", topics) }()
	go func() {
		buf := make([]byte, 4096)
		if _, err := server.Read(buf); err != nil { // the command
			return
		}
		server.Write(stream) //nolint:errcheck // the reader may end before taking it all
		server.Close()
	}()
	select {
	case <-l.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not end at the end of the stream")
	}
	client.Close()
	return msgs, <-outcome
}

func TestReaderConfirmsAndDelivers(t *testing.T) {
	stream := "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n" +
		"*3\r\n$9\r\nsubscribe\r\n$2\r\nb\x00\r\n:2\r\n" +
		"*3\r\n$7\r\nmessage\r\n$2\r\nb\x00\r\n$5\r\nx\r\ny\n\r\n" +
		"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$0\r\n\r\n"
	msgs, err := readAll(t, []byte(stream), []string{"a", "b\x00"})
	if err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	if len(msgs) != 2 || msgs[0] != [2]string{"b\x00", "x\r\ny\n"} || msgs[1] != [2]string{"a", ""} {
		t.Fatalf("delivered %q", msgs)
	}
}

func TestReaderFailsTheCommandOnAnErrorReply(t *testing.T) {
	_, err := readAll(t, []byte("-NOPERM this user has no permissions to access the 'x' channel\r\n"), []string{"x", "y"})
	var reply replyError
	if !errors.As(err, &reply) || !bytes.HasPrefix([]byte(reply), []byte("NOPERM")) {
		t.Fatalf("SUBSCRIBE: %v, want the NOPERM reply", err)
	}
}

// FuzzSubscriberReader feeds the subscribe reader any bytes: it ends with an error or at the end
// of the stream, never panics, and never hangs the waiting command.
func FuzzSubscriberReader(f *testing.F) {
	f.Add([]byte("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\nabc\r\n"))
	f.Add([]byte("*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"))
	f.Add([]byte("-ERR no\r\n"))
	f.Add([]byte("*3\r\n$7\r\nmessage\r\n$-1\r\n$99999999999\r\n"))
	f.Add([]byte("+OK\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		readAll(t, stream, []string{"a"})
	})
}

// FuzzReplyReader is FuzzSubscriberReader for the publishing link's reader, with a pipeline of
// three commands waiting.
func FuzzReplyReader(f *testing.F) {
	f.Add([]byte(":1\r\n-NOPERM no\r\n:0\r\n"))
	f.Add([]byte("*2\r\n$1\r\na\r\n:1\r\n+OK\r\n$3\r\nabc\r\n$-1\r\n"))
	f.Add([]byte(":99999999999999999999\r\n*1\r\n*1\r\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		client, server := net.Pipe()
		l := newLink(client, time.Second)
		go l.readReplies()
		outcome := make(chan error, 1)
		go func() {
			_, err := l.do(context.Background(), 3, make([]int, 3), func(out []byte) []byte { return append(out, "PING\r\n"...) })
			outcome <- err
		}()
		go func() {
			if _, err := server.Read(make([]byte, 64)); err == nil {
				server.Write(stream) //nolint:errcheck // the reader may end before taking it all
			}
			server.Close()
		}()
		select {
		case <-outcome:
		case <-time.After(5 * time.Second):
			t.Fatal("the pipeline's call hangs after the end of the stream")
		}
		client.Close()
		<-l.ended
	})
}
