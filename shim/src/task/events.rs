//! Events to containerd, in the order they happened, through one forwarding task.
//!
//! [`Events::send`] never waits: it stamps the event and queues it. The forwarding task sends
//! the queue's head until containerd takes it, reconnecting after a restart, and only then the
//! next: containerd requires `/tasks/start` before the same process's `/tasks/exit`, and a
//! restarted containerd learns of exits that happened while it was down. The crate's
//! publisher requeues a failed event behind later ones and drops it after five tries (about
//! 15 s); this one keeps the order and retries for [`DELIVERY_LIMIT`].

use std::time::{Duration, Instant};

use containerd_shim::{
    protos::{
        protobuf::MessageDyn,
        shim::{event::Envelope, events::ForwardRequest},
        shim_async::{Client, EventsClient},
        ttrpc::context::Context,
    },
    util::{convert_to_any, timestamp},
};
use tokio::sync::mpsc;

/// How long an event is retried before it is given up, with a log line that names it.
const DELIVERY_LIMIT: Duration = Duration::from_secs(300);

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long one try may take.
const TRY_LIMIT: Duration = Duration::from_secs(5);

/// The queue to containerd.
pub struct Events {
    namespace: String,
    queue: mpsc::UnboundedSender<Envelope>,
}

impl Events {
    /// Starts the forwarding task to containerd's ttrpc `address`.
    pub fn start(address: &str, namespace: &str) -> Events {
        let (queue, rx) = mpsc::unbounded_channel();
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        tokio::spawn(forward(address, rx));
        Events {
            namespace: namespace.to_string(),
            queue,
        }
    }

    /// Queues `event` under `topic`; it is sent after every event queued before it.
    pub fn send(&self, topic: &str, event: Box<dyn MessageDyn>) {
        let mut envelope = Envelope::new();
        envelope.set_topic(topic.to_string());
        envelope.set_namespace(self.namespace.clone());
        if let Ok(t) = timestamp() {
            envelope.set_timestamp(t);
        }
        match convert_to_any(event) {
            Ok(any) => envelope.set_event(any),
            Err(e) => {
                log::error!("cannot encode the {topic} event: {e}");
                return;
            }
        }
        if self.queue.send(envelope).is_err() {
            log::error!("cannot send the {topic} event: the forwarding task is gone");
        }
    }
}

async fn forward(address: String, mut rx: mpsc::UnboundedReceiver<Envelope>) {
    let mut client: Option<EventsClient> = None;
    while let Some(envelope) = rx.recv().await {
        let topic = envelope.topic.clone();
        let mut req = ForwardRequest::new();
        req.set_envelope(envelope);
        let since = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut tries = 0u32;
        loop {
            tries += 1;
            if client.is_none() {
                client = Client::connect(&address).await.ok().map(EventsClient::new);
            }
            let sent = match &client {
                Some(c) => {
                    match tokio::time::timeout(TRY_LIMIT, c.forward(Context::default(), &req)).await
                    {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("no answer within {TRY_LIMIT:?}")),
                    }
                }
                None => Err(format!("cannot connect to {address}")),
            };
            match sent {
                Ok(_) => {
                    if tries > 1 {
                        log::info!("sent the {topic} event after {tries} tries");
                    }
                    break;
                }
                Err(e) => {
                    // A restarted containerd listens on a new socket: connect again.
                    client = None;
                    if since.elapsed() > DELIVERY_LIMIT {
                        log::error!(
                            "gave up the {topic} event after {tries} tries in {DELIVERY_LIMIT:?}: {e}; \
                             containerd did not come back to take it"
                        );
                        break;
                    }
                    if tries == 1 {
                        log::warn!("cannot send the {topic} event yet ({e}); retrying in order");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
