//! Membership calls: list, add, promote, remove (`/v1/members`), and leadership transfer.

use super::{Client, ClientError, Failover};
use crate::store::http::{AddMember, MembersAnswer, TransferAnswer, TransferRequest};
use axum::body::Bytes;
use hyper::Method;

impl Client {
    /// The members as the leader sees them (relayed by the node asked), or as the node
    /// asked sees them with `local` (or when the leader cannot be reached).
    pub async fn members(&self, local: bool) -> Result<MembersAnswer, ClientError> {
        let path = if local {
            "/v1/members?local"
        } else {
            "/v1/members"
        };
        let answer = self
            .call(
                Method::GET,
                path,
                Bytes::new(),
                Failover::Retryable,
                self.timeout(),
            )
            .await?;
        self.json(&answer, "member list")
    }

    /// Adds the node `peer` (`ID@IP:PORT`) as a learner (an observer when `observer`);
    /// answers once the change committed.
    pub async fn add_member(
        &self,
        peer: &str,
        observer: bool,
    ) -> Result<MembersAnswer, ClientError> {
        let body = serde_json::to_vec(&AddMember {
            peer: peer.to_string(),
            observer,
        })
        .map_err(|e| self.bad_response(self.current_index(), format!("request: {e}")))?;
        self.change(
            Method::POST,
            "/v1/members",
            body.into(),
            "membership change answer",
        )
        .await
    }

    /// Promotes the learner `id` (an id or a unique prefix) to voter.
    pub async fn promote_member(&self, id: &str) -> Result<MembersAnswer, ClientError> {
        let path = format!("/v1/members/{}/promote", super::encode_param(id));
        self.change(
            Method::POST,
            &path,
            Bytes::new(),
            "membership change answer",
        )
        .await
    }

    /// Removes the member `id` (an id or a unique prefix).
    pub async fn remove_member(&self, id: &str) -> Result<MembersAnswer, ClientError> {
        let path = format!("/v1/members/{}", super::encode_param(id));
        self.change(
            Method::DELETE,
            &path,
            Bytes::new(),
            "membership change answer",
        )
        .await
    }

    /// Hands leadership to `to` (an id or a unique prefix), or to the most caught-up
    /// voter; answers with the new leader once it is known.
    pub async fn transfer_leader(&self, to: Option<&str>) -> Result<TransferAnswer, ClientError> {
        let body = serde_json::to_vec(&TransferRequest {
            to: to.map(str::to_owned),
        })
        .map_err(|e| self.bad_response(self.current_index(), format!("request: {e}")))?;
        self.change(
            Method::POST,
            "/v1/leader/transfer",
            body.into(),
            "transfer answer",
        )
        .await
    }

    /// A call that changes something (not sent again unless it certainly did not apply),
    /// answered with JSON.
    async fn change<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        what: &str,
    ) -> Result<T, ClientError> {
        let answer = self
            .call(method, path, body, Failover::NotApplied, self.timeout())
            .await?;
        self.json(&answer, what)
    }
}
