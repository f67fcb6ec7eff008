//! Events to containerd, in the order they happened, through one forwarding task.
//!
//! [`Events::send`] never waits: it stamps the event and queues it. The forwarding task sends
//! the queue's head until containerd takes it, reconnecting after a restart, and only then the
//! next: containerd requires `/tasks/start` before the same process's `/tasks/exit`, and a
//! restarted containerd learns of exits that happened while it was down. The crate's
//! publisher requeues a failed event behind later ones and drops it after five tries (about
//! 15 s); this one keeps the order and retries for [`DELIVERY_LIMIT`].
//!
//! At Shutdown the shim waits for the queue to drain ([`Events::flush`]): an exit while an
//! event's reply is on its way makes containerd log `failed sending message on channel`
//! (broken pipe), and drops what was still queued.

use std::time::{Duration, Instant};

use containerd_shim::{
    protos::{
        events::task::{
            TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
            TaskResumed, TaskStart,
        },
        protobuf::{well_known_types::any::Any, Message},
        shim::{event::Envelope, events::ForwardRequest},
        shim_async::{Client, EventsClient},
        ttrpc::context::Context,
    },
    util::timestamp,
};
use tokio::sync::{mpsc, oneshot};

/// How long an event is retried before it is given up, with a log line that names it.
const DELIVERY_LIMIT: Duration = Duration::from_secs(300);

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long one try may take.
const TRY_LIMIT: Duration = Duration::from_secs(5);

/// A task event: its topic, and its protobuf type name, which containerd reads as the type
/// URL of the event's `Any`. Both are written out: asking rust-protobuf for a message's name
/// builds the descriptors of every proto file it depends on, comments included, some 500 kB
/// that a shim would then hold for its life.
pub trait Event: Message {
    const TOPIC: &'static str;
    const TYPE: &'static str;
}

macro_rules! events {
    ($($event:ident => $topic:literal),* $(,)?) => {
        $(impl Event for $event {
            const TOPIC: &'static str = $topic;
            const TYPE: &'static str = concat!("containerd.events.", stringify!($event));
        })*
    };
}

events! {
    TaskCreate => "/tasks/create",
    TaskStart => "/tasks/start",
    TaskDelete => "/tasks/delete",
    TaskExit => "/tasks/exit",
    TaskOOM => "/tasks/oom",
    TaskExecAdded => "/tasks/exec-added",
    TaskExecStarted => "/tasks/exec-started",
    TaskPaused => "/tasks/paused",
    TaskResumed => "/tasks/resumed",
}

/// The queue to containerd.
pub struct Events {
    namespace: String,
    queue: mpsc::UnboundedSender<Queued>,
}

/// What the forwarding task takes, in order.
enum Queued {
    Event(Envelope),
    /// Answered once every event queued before it was delivered or given up.
    Flush(oneshot::Sender<()>),
}

impl Events {
    /// Starts the forwarding task to containerd's ttrpc `address`.
    pub fn start(address: &str, namespace: &str) -> Events {
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        Events::forward_to(
            Containerd {
                address,
                client: None,
            },
            namespace,
        )
    }

    /// Starts the forwarding task to `sink`.
    fn forward_to(sink: impl Sink + Send + 'static, namespace: &str) -> Events {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward(sink, rx));
        Events {
            namespace: namespace.to_string(),
            queue,
        }
    }

    /// Events that the same forwarding task delivers into a channel instead of containerd.
    #[cfg(test)]
    pub fn into_channel(namespace: &str) -> (Events, mpsc::UnboundedReceiver<Envelope>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Events::forward_to(Channel(tx), namespace), rx)
    }

    /// Queues `event`; it is sent after every event queued before it.
    pub fn send<E: Event>(&self, event: E) {
        let topic = E::TOPIC;
        let mut envelope = Envelope::new();
        envelope.set_topic(topic.to_string());
        envelope.set_namespace(self.namespace.clone());
        if let Ok(t) = timestamp() {
            envelope.set_timestamp(t);
        }
        match event.write_to_bytes() {
            Ok(value) => envelope.set_event(Any {
                type_url: E::TYPE.to_string(),
                value,
                ..Default::default()
            }),
            Err(e) => {
                log::error!("cannot encode the {topic} event: {e}");
                return;
            }
        }
        if self.queue.send(Queued::Event(envelope)).is_err() {
            log::error!("cannot send the {topic} event: the forwarding task is gone");
        }
    }

    /// Waits until every event queued so far was delivered (or given up), at most `limit`.
    /// Whether the queue drained in time.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, drained) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).is_err() {
            return true;
        }
        matches!(tokio::time::timeout(limit, drained).await, Ok(Ok(())))
    }
}

/// Where the forwarding task delivers events.
trait Sink {
    /// One try at delivering `req`.
    fn deliver(
        &mut self,
        req: &ForwardRequest,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// containerd's events service.
struct Containerd {
    address: String,
    client: Option<EventsClient>,
}

impl Sink for Containerd {
    async fn deliver(&mut self, req: &ForwardRequest) -> Result<(), String> {
        if self.client.is_none() {
            self.client = Client::connect(&self.address)
                .await
                .ok()
                .map(EventsClient::new);
        }
        let sent = match &self.client {
            Some(c) => {
                match tokio::time::timeout(TRY_LIMIT, c.forward(Context::default(), req)).await {
                    Ok(r) => r.map(drop).map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {TRY_LIMIT:?}")),
                }
            }
            None => Err(format!("cannot connect to {}", self.address)),
        };
        if sent.is_err() {
            // A restarted containerd listens on a new socket: connect again.
            self.client = None;
        }
        sent
    }
}

/// A test's channel.
#[cfg(test)]
struct Channel(mpsc::UnboundedSender<Envelope>);

/// How long the test channel takes to take each event, in ms: a slow containerd.
#[cfg(test)]
static CHANNEL_DELAY_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Makes the test channel take `delay` per event from now on.
#[cfg(test)]
pub fn slow_test_channel(delay: Duration) {
    CHANNEL_DELAY_MS.store(
        delay.as_millis() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

#[cfg(test)]
impl Sink for Channel {
    async fn deliver(&mut self, req: &ForwardRequest) -> Result<(), String> {
        let delay = CHANNEL_DELAY_MS.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let envelope = req.envelope.clone().unwrap_or_default();
        self.0
            .send(envelope)
            .map_err(|_| "the test stopped listening".to_string())
    }
}

async fn forward(mut sink: impl Sink, mut rx: mpsc::UnboundedReceiver<Queued>) {
    while let Some(queued) = rx.recv().await {
        let envelope = match queued {
            Queued::Event(envelope) => envelope,
            Queued::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let topic = envelope.topic.clone();
        let mut req = ForwardRequest::new();
        req.set_envelope(envelope);
        let since = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut tries = 0u32;
        loop {
            tries += 1;
            match sink.deliver(&req).await {
                Ok(()) => {
                    if tries > 1 {
                        log::info!("sent the {topic} event after {tries} tries");
                    }
                    break;
                }
                Err(e) => {
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

#[cfg(test)]
mod tests {
    use containerd_shim::protos::events::task::{TaskExit, TaskStart};

    use super::*;

    /// Refuses the first `refusals` tries, then delivers each event's topic with the number
    /// of tries it took.
    struct Flaky {
        refusals: u32,
        tries: u32,
        out: mpsc::UnboundedSender<(String, u32)>,
    }

    impl Sink for Flaky {
        async fn deliver(&mut self, req: &ForwardRequest) -> Result<(), String> {
            self.tries += 1;
            if self.refusals > 0 {
                self.refusals -= 1;
                return Err("containerd is restarting".into());
            }
            let topic = req.envelope.topic.clone();
            let _ = self.out.send((topic, std::mem::take(&mut self.tries)));
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_event_is_retried_before_the_next_one() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let events = Events::forward_to(
            Flaky {
                refusals: 2,
                tries: 0,
                out,
            },
            "ns",
        );
        events.send(TaskStart::default());
        events.send(TaskExit::default());
        let mut got = Vec::new();
        while got.len() < 2 {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(delivered)) => got.push(delivered),
                _ => panic!("an event was lost; delivered: {got:?}"),
            }
        }
        assert_eq!(
            got,
            [
                ("/tasks/start".to_string(), 3),
                ("/tasks/exit".to_string(), 1)
            ]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_waits_for_the_events_before_it_and_no_longer_than_its_limit() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let events = Events::forward_to(
            Flaky {
                refusals: 3,
                tries: 0,
                out,
            },
            "ns",
        );
        events.send(TaskExit::default());
        // Three refusals take 50 + 100 + 200 ms of backoff.
        assert!(!events.flush(Duration::from_millis(100)).await);
        assert!(rx.try_recv().is_err(), "delivered before its retries");
        assert!(events.flush(Duration::from_secs(5)).await);
        assert_eq!(rx.try_recv().unwrap(), ("/tasks/exit".to_string(), 4));
        assert!(
            events.flush(Duration::from_millis(1)).await,
            "nothing queued"
        );
    }
}
