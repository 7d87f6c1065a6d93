// Command gwbench is the load tool and the target servers of
// bench/gateway.sh, which compares airlock's egress gateway with squid,
// tinyproxy and haproxy on 127.0.0.1.
//
// Subcommands (each prints one JSON line, servers print their address):
//
//	gwbench source -bytes N        TCP server: every connection gets N bytes
//	                               (sendfile of a temporary file), then EOF
//	gwbench echo                   TCP server echoing every byte back
//	                               (read/write: no pipe held per connection)
//	gwbench relay -to A [-connect] a Go TCP relay to A (accept, dial, two
//	                               io.Copy); -connect reads a CONNECT head
//	                               first (http.ReadRequest) and answers 200:
//	                               the Go floor airlock's cost is set against;
//	                               -engine epoll: the same as one thread with
//	                               one epoll set and non-blocking sockets
//	                               (haproxy's shape; Linux; the head is read
//	                               to its blank line, not parsed)
//	gwbench stream -addr A [-connect H:P] -bytes N -pids P
//	                               one connection (a CONNECT tunnel when
//	                               -connect is set) reading N bytes with
//	                               splice(2) to /dev/null: bytes/s and the
//	                               CPU seconds of the PIDs per GiB
//	gwbench rate -addr A [-connect H:P] -c 8 -d 5s
//	                               a new connection (tunnel) per request:
//	                               connect, CONNECT, echo a few bytes, close;
//	                               tunnels/s, p50/p99 latency, and how busy
//	                               each CPU was (/proc/stat); -rate R: open
//	                               loop, R tunnels/s each timed from its
//	                               scheduled start
//	gwbench idle -addr A -connect H:P -n N -pids P [-hold D]
//	                               N tunnels kept open and idle, VmRSS of the
//	                               PIDs once they are all established; -hold
//	                               keeps them open D longer (to profile)
//
// Concurrency: the servers serve each connection on its own goroutine;
// rate runs -c workers that share only atomic counters and a mutex-guarded
// latency list; idle opens its tunnels from a bounded pool of goroutines.
// Nothing is global: every subcommand builds its state in its run function.
package main
