//! The overlay's etcd: the network's config, the leases under `<prefix>/subnets/`, and this host's own lease,
//! taken in a transaction so that two hosts never hold one subnet.

use std::time::Duration;

use culvert_core::profile::OverlayTunnel;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions, TlsOptions, Txn, TxnOp,
    WatchOptions,
};
use ipnet::Ipv4Net;

use super::OverlayError;
use super::flannel::{LeaseAttrs, Network, key_of_subnet};
use super::nodes::Lease;

/// How long one call to etcd may take: a dead member is given up on and another one tried well within the
/// helper's request timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// A call that failed for a passing reason (a leader election after a member died: "etcdserver: leader
/// changed") is tried this many times in all, from 200 ms apart, doubling: an election takes about a second.
const CALL_TRIES: u32 = 4;
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What etcd or the connection said, without the layers of gRPC wrapping around it.
fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_owned(),
        etcd_client::Error::TransportError(t) => {
            let mut text = t.to_string();
            let mut source = std::error::Error::source(t);
            while let Some(inner) = source {
                text = format!("{text}: {inner}");
                source = inner.source();
            }
            text
        }
        other => other.to_string(),
    }
}

/// Whether the cluster may answer the same call in a moment: no leader yet, a member gone, a call timed out.
fn passing(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded)
        }
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

/// A connection to the overlay's etcd, at one prefix.
#[derive(Clone)]
pub struct Registry {
    client: Client,
    prefix: String,
    endpoints: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("prefix", &self.prefix).field("endpoints", &self.endpoints).finish()
    }
}

impl Registry {
    /// Connects to the overlay's etcd with the TLS files and the user its profile gives (their contents, as the
    /// client read them: culvertd reads no user's file). Neither the key nor the password is ever logged.
    pub async fn connect(settings: &OverlayTunnel) -> Result<Self, OverlayError> {
        let (endpoints, prefix) = (&settings.etcd, settings.prefix.as_str());
        let joined = endpoints.join(", ");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), CALL_TIMEOUT)
            .with_require_leader(true);
        if let Some(ca) = &settings.etcd_ca {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(&ca.pem));
            if let (Some(cert), Some(key)) = (&settings.etcd_cert, &settings.etcd_key) {
                tls = tls.identity(Identity::from_pem(&cert.pem, &key.pem));
            }
            options = options.with_tls(tls);
        }
        if let (Some(user), Some(password)) = (&settings.etcd_username, &settings.etcd_password) {
            // etcd's tokens end after 5 idle minutes by default: the client takes a new one when it must.
            options = options.with_user(user.clone(), password.expose().to_owned()).with_auto_token_refresh(true);
        }
        let client = tokio::time::timeout(CALL_TIMEOUT * 2, Client::connect(endpoints, Some(options)))
            .await
            .map_err(|_| OverlayError::Unreachable { endpoints: joined.clone(), message: "no answer".into() })?
            .map_err(|e| match &e {
                etcd_client::Error::GRpcStatus(s) if s.message().contains("authentication failed") => {
                    OverlayError::Refused { endpoints: joined.clone(), message: s.message().to_owned() }
                }
                _ => OverlayError::Unreachable { endpoints: joined.clone(), message: describe(&e) },
            })?;
        Ok(Self { client, prefix: prefix.to_owned(), endpoints: joined })
    }

    /// Runs `f` on the client, trying again while the cluster's trouble is passing.
    async fn call<T, F, Fut>(&self, op: &str, mut f: F) -> Result<T, OverlayError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut pause = RETRY_PAUSE;
        let mut tries = 1;
        loop {
            match f(self.client.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if tries < CALL_TRIES && passing(&e) => {
                    tracing::debug!("overlay: {op}: {e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    tries += 1;
                }
                Err(e) => return Err(self.error(op, &e)),
            }
        }
    }

    fn error(&self, op: &str, e: &etcd_client::Error) -> OverlayError {
        match e {
            etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::PermissionDenied => {
                OverlayError::Refused { endpoints: self.endpoints.clone(), message: format!("{op}: {}", s.message()) }
            }
            _ => OverlayError::Etcd { op: op.into(), endpoints: self.endpoints.clone(), message: describe(e) },
        }
    }

    pub fn subnets_prefix(&self) -> String {
        format!("{}/subnets/", self.prefix)
    }

    pub fn lease_key(&self, subnet: Ipv4Net) -> String {
        format!("{}{}", self.subnets_prefix(), key_of_subnet(subnet))
    }

    /// The network's config at `<prefix>/config`.
    pub async fn network(&mut self) -> Result<Network, OverlayError> {
        let key = format!("{}/config", self.prefix);
        let found = self
            .call("reading the config", |mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        let kv = found.kvs().first().ok_or(OverlayError::NoConfig { key: key.clone() })?;
        Network::parse(kv.value()).map_err(|e| OverlayError::BadConfig { key, problem: e })
    }

    /// Every lease, and the revision they were read at (a watch goes on from the next).
    pub async fn leases(&mut self) -> Result<(Vec<Lease>, i64), OverlayError> {
        let prefix = self.subnets_prefix();
        let found = self
            .call("listing the leases", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let revision = found.header().map_or(0, |h| h.revision());
        let leases = found.kvs().iter().filter_map(|kv| lease(&prefix, kv)).collect();
        Ok((leases, revision))
    }

    /// Puts this host's lease of `subnet` under a new etcd lease of `ttl` seconds. Unless `replace` (its own
    /// lease, taken over), only when the key does not exist: `None` when another host was faster.
    pub async fn acquire(
        &mut self,
        subnet: Ipv4Net,
        attrs: &LeaseAttrs,
        ttl: u64,
        replace: bool,
    ) -> Result<Option<i64>, OverlayError> {
        let key = self.lease_key(subnet);
        let value = serde_json::to_vec(attrs).unwrap_or_default();
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        let granted = self.call("granting a lease", |mut c| async move { c.lease_grant(ttl, None).await }).await?;
        let id = granted.id();
        let put = TxnOp::put(key.as_str(), value, Some(PutOptions::new().with_lease(id)));
        let txn = if replace {
            Txn::new().and_then([put])
        } else {
            Txn::new().when([Compare::version(key.as_str(), CompareOp::Equal, 0)]).and_then([put])
        };
        // Tried again after a passing failure, a transaction that did commit finds its own key and fails its
        // compare: the lease is given back and another subnet tried, as when another host was faster.
        match self
            .call("writing the lease", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await
        {
            Ok(done) if done.succeeded() => Ok(Some(id)),
            Ok(_) => {
                self.revoke(id).await;
                Ok(None)
            }
            Err(e) => {
                self.revoke(id).await;
                Err(e)
            }
        }
    }

    /// Ends an etcd lease, and with it the keys it holds; every other host drops this one at once.
    pub async fn revoke(&mut self, id: i64) {
        if let Err(e) = self.client.lease_revoke(id).await {
            tracing::warn!("overlay: revoking etcd lease {id:x}: {e}");
        }
    }

    /// The changes to the leases after `revision`.
    pub async fn watch(&mut self, revision: i64) -> Result<etcd_client::WatchStream, OverlayError> {
        let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
        self.client.watch(self.subnets_prefix(), Some(options)).await.map_err(|e| self.error("watching the leases", &e))
    }
}

/// A key under the subnets prefix as a lease; other keys (deeper ones, not UTF-8) are not leases.
pub fn lease(prefix: &str, kv: &etcd_client::KeyValue) -> Option<Lease> {
    let name = kv.key_str().ok()?.strip_prefix(prefix)?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some(Lease { name: name.to_owned(), value: kv.value().to_vec(), created: kv.create_revision() })
}
