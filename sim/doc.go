// Package sim simulates P1 gateways: smart meters whose telegrams stream over
// TCP, as the boxes on a meter's P1 port serve them. It is the counterpart
// p1logger is tested against: the quick-start demo and the p1sim command run
// it, end-to-end tests start it in-process on loopback (faults included),
// and load tests open thousands of connections to it.
//
// A [Meter] models one household behind one meter: base load, appliances,
// solar panels by the hour and the season, gas heating, water. Its energy
// registers grow by exactly the power shown times the time it was shown
// for; tariffs follow the local clock; timestamps carry the S/W flag of the
// meter's time zone. Given a seed and the sequence of times it is rendered
// at, a Meter is deterministic. [Meter.Render] returns a [Sent]: the bytes
// and, as a [Reading], the values they carry in the form parser.Parse
// reports them, so tests can compare what arrived with what was sent.
//
// A [Server] listens on a TCP address and writes a telegram every interval,
// either the same one to every client (broadcast, like a real gateway) or
// from a meter of its own per connection (for load tests). Faults — bad
// CRC, garbage between telegrams, cut frames, byte-by-byte dripping,
// silence, disconnects, a refusing listener — are configured from the start
// ([Faults]) or injected at run time ([Server.Inject], also over HTTP via
// [Server.Handler]). Every telegram written is reported to Config.OnSend and
// kept in a bounded log ([Server.Recent]).
//
// The gateways that are not a TCP stream serve one broadcast meter each
// ([FeedConfig]): [HomeWizard] emulates a HomeWizard P1 meter's local API
// (v1 over HTTP, v2 over HTTPS with a self-signed certificate, a token and
// the 503 before the first telegram), [MQTT] publishes to a broker (whole
// telegrams or Tasmota's SerialReceived pieces), and [WebSocket] streams to
// at most MaxClients clients, closing a further one with 1008.
package sim
