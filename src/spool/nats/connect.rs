//! Connecting to the NATS servers (`delivery.nats.urls`, its auth and TLS).

use super::*;

impl Backend {
    /// Connects. Fails with a message naming what is wrong (unreachable, refused credentials).
    /// The streams and consumers are made by [`Backend::provision`], once the relay answers its
    /// health checks.
    pub async fn connect(config: &NatsConfig, max_dead: usize) -> Result<Arc<Backend>, String> {
        let urls = config.redacted_urls().join(", ");
        let mut options = match &config.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::Credentials(creds) => async_nats::ConnectOptions::with_credentials(creds.expose())
                .map_err(|e| format!("delivery.nats.credentials_file: {e}"))?,
            NatsAuth::Token(token) => async_nats::ConnectOptions::with_token(token.expose().to_owned()),
            NatsAuth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
            }
        };
        if let Some(tls) = &config.tls {
            let client_config =
                crate::tls::ClientConfigs::new().get(tls).map_err(|e| format!("delivery.nats.tls_config: {e}"))?;
            options = options.tls_client_config((*client_config).clone()).require_tls(true);
        }
        let options = options
            .name("amrelay")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => {
                        metrics::gauge!(m::NATS_CONNECTED).set(1.0);
                        tracing::info!("NATS connection (re)established");
                    }
                    async_nats::Event::Disconnected => {
                        metrics::gauge!(m::NATS_CONNECTED).set(0.0);
                        tracing::error!("NATS connection lost; refusing batches with 503 until it is back");
                    }
                    other => tracing::warn!(event = %other, "NATS connection event"),
                }
            });
        let addresses = config
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("delivery.nats.urls: {e}"))?;
        let client = tokio::time::timeout(CONNECT_TIMEOUT, options.connect(addresses))
            .await
            .map_err(|_| format!("cannot connect to NATS at {urls}: no answer within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot connect to NATS at {urls}: {e}"))?;
        metrics::gauge!(m::NATS_CONNECTED).set(1.0);
        let js = jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client.clone());
        let dead_stream = format!("{}_DEAD", config.stream);
        let (history, history_queue) = history::SharedHistory::new(history::queue_capacity());
        let stop = CancellationToken::new();
        // Records arrive once deliveries finish, after the streams are provisioned.
        tokio::spawn(history::publish(
            js.clone(),
            history::subject(&config.stream),
            history_queue,
            history.limits().clone(),
            stop.clone(),
        ));
        let backend = Backend {
            config: config.clone(),
            client,
            js,
            dead_stream,
            max_dead,
            history_stream: history::stream_name(&config.stream),
            history,
            inflight: papaya::HashMap::new(),
            pending: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            closing: CancellationToken::new(),
            pullers: tokio_util::task::TaskTracker::new(),
            stop,
        };
        Ok(Arc::new(backend))
    }
}
