package proof

// Channels a notice to a data subject is delivered on, as the log's
// notice_delivered entries and a certificate's extension name them.
const (
	ChannelBus     = "bus"
	ChannelWebhook = "webhook"
)
