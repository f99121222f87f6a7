// Package udpsource is the socket side shared by the UDP source modules,
// statsd_server and jsond_server. A Source listens with io/udp (UDP
// sockets, a unix datagram socket, or both) and, when the module asks
// (WithTCP), with io/tcp; it logs where, runs the module's flush loop
// until shutdown, and moves the listeners' counts into the self report,
// with the readers' gaps (reader_gap_seconds) and the fullest socket
// queue of each second (socket_queue_bytes). A
// Decoder, one per reader or connection slot, counts each datagram (or
// batch of lines) and inflates datagrams when try_decompress is on. It
// knows nothing of the protocols: the module's handler parses what the
// Decoder returns.
//
// A Source also carries the module's part in the agent's health: readiness
// waits for every socket (UDP, unix, TCP) to be bound, each flush is a
// beat ("flush") that the watchdog sees stuck if it never returns, and a
// panic in a flush or a publish is recovered, counted (panics) and logged
// at most once a minute, so that one bad flush does not stop the next ones.
package udpsource
