// wsclient: the load client of bench.realtime_fanout. It opens -clients WebSocket connections,
// subscribes each to -topic, prints "ready" once every connection is subscribed, then records
// for each of -events events the delay from its publish stamp (payload "t", Unix nanoseconds,
// set by the server as it publishes) to its receipt at each client. It prints one JSON line per
// event (clients reached, last-client and median delay) as soon as every client received it, so
// the driver can publish the next one, and exits once every event is complete; at -timeout it
// prints the events still incomplete and exits.
//
// Compiled, so that reading 10,000 sockets does not weigh on the measurement the way a Python
// client does; built from Debian's packages only (bench/wsclient/build.sh).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

type eventStats struct {
	Event      int     `json:"event"`
	Received   int     `json:"received"`
	LastMs     float64 `json:"last_ms"`
	MedianMs   float64 `json:"median_ms"`
	delaysNano []int64
}

// field returns the integer after `"name":` in a frame; the frames are small and flat enough
// that a search is exact, and far cheaper than decoding 10,000 copies of each.
func field(frame []byte, name string) (int64, bool) {
	key := []byte(`"` + name + `":`)
	at := bytes.LastIndex(frame, key)
	if at < 0 {
		return 0, false
	}
	rest := frame[at+len(key):]
	end := 0
	for end < len(rest) && (rest[end] == '-' || (rest[end] >= '0' && rest[end] <= '9')) {
		end++
	}
	value, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return value, err == nil
}

// connect opens one connection and subscribes it.
func connect(dialer *websocket.Dialer, url string, subscribe []byte) (*websocket.Conn, error) {
	conn, _, err := dialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	if err := conn.WriteMessage(websocket.TextMessage, subscribe); err != nil {
		conn.Close()
		return nil, err
	}
	_, reply, err := conn.ReadMessage()
	if err != nil || !bytes.Contains(reply, []byte(`"subscribed"`)) {
		conn.Close()
		return nil, fmt.Errorf("subscribe: %s %v", reply, err)
	}
	return conn, nil
}

func main() {
	url := flag.String("url", "", "WebSocket URL")
	clients := flag.Int("clients", 1000, "connections to open")
	topic := flag.String("topic", "", "topic to subscribe to")
	events := flag.Int("events", 10, "events to wait for (payload n = 0 .. events-1)")
	batch := flag.Int("batch", 50, "connections opened at once")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after this long")
	flag.Parse()

	stats := make([]eventStats, *events)
	for i := range stats {
		stats[i].Event = i
		stats[i].delaysNano = make([]int64, 0, *clients)
	}
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	report := func(stats *eventStats) {
		delays := stats.delaysNano
		sort.Slice(delays, func(a, b int) bool { return delays[a] < delays[b] })
		stats.Received = len(delays)
		if len(delays) > 0 {
			stats.LastMs = float64(delays[len(delays)-1]) / 1e6
			stats.MedianMs = float64(delays[len(delays)/2]) / 1e6
		}
		out.Encode(stats)
	}
	var done sync.WaitGroup
	subscribe := []byte(fmt.Sprintf(`{"type":"subscribe","topic":%q}`, *topic))
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}

	conns := make([]*websocket.Conn, 0, *clients)
	began := time.Now()
	for start := 0; start < *clients; start += *batch {
		end := start + *batch
		if end > *clients {
			end = *clients
		}
		opened := make([]*websocket.Conn, end-start)
		var wg sync.WaitGroup
		errs := make(chan error, end-start)
		for i := range opened {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				conn, err := connect(&dialer, *url, subscribe)
				for attempt := 1; err != nil && attempt < 5; attempt++ {
					// A loaded server may ask to come back later (close 1013), as a
					// browser would.
					time.Sleep(time.Duration(attempt) * time.Second)
					conn, err = connect(&dialer, *url, subscribe)
				}
				if err != nil {
					errs <- err
					return
				}
				opened[i] = conn
				// Read from now on, which also answers the server's pings while the others
				// connect.
				done.Add(1)
				go func() {
					defer done.Done()
					for seen := 0; seen < *events; {
						_, frame, err := conn.ReadMessage()
						received := time.Now().UnixNano()
						if err != nil {
							return
						}
						n, okN := field(frame, "n")
						stamp, okT := field(frame, "t")
						if !okN || !okT || n < 0 || int(n) >= *events {
							continue
						}
						mu.Lock()
						stats[n].delaysNano = append(stats[n].delaysNano, received-stamp)
						if len(stats[n].delaysNano) == *clients {
							report(&stats[n])
						}
						mu.Unlock()
						seen++
					}
				}()
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			fmt.Fprintln(os.Stderr, "wsclient:", err)
			os.Exit(1)
		}
		conns = append(conns, opened...)
		if len(conns)%1000 == 0 {
			fmt.Fprintf(os.Stderr, "wsclient: %d subscribed after %.1f s\n", len(conns), time.Since(began).Seconds())
		}
	}

	fmt.Println(`{"ready":true}`)

	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(*timeout):
		fmt.Fprintln(os.Stderr, "wsclient: timed out")
	}
	mu.Lock()
	for i := range stats {
		if len(stats[i].delaysNano) < *clients {
			report(&stats[i])
		}
	}
	mu.Unlock()
	bye := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	for _, conn := range conns {
		conn.WriteControl(websocket.CloseMessage, bye, time.Now().Add(time.Second))
		conn.Close()
	}
}
