//! HApi's operations on the main HAProxy (spec/hapi.md).

use crate::hapi::{self, Action, NodeStatus};

use super::{Ctx, DomainError, Outcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HapiOp {
    Status,
    Nodes(NodeStatus),
    /// Enable or disable node `node` in every backend of `frontend`.
    SetNode {
        frontend: String,
        action: Action,
        node: String,
    },
}

pub fn execute(ctx: &Ctx, op: HapiOp) -> Result<Outcome, DomainError> {
    let rt = &ctx.main_haproxy;
    let prefix = ctx.config.server_prefix.as_deref();
    match op {
        HapiOp::Status => Ok(Outcome::Info(rt.show_info()?)),
        HapiOp::Nodes(status) => Ok(Outcome::Nodes(hapi::nodes(
            &rt.show_stat()?,
            status,
            prefix,
        ))),
        HapiOp::SetNode {
            frontend,
            action,
            node,
        } => {
            let backends = ctx
                .config
                .frontends
                .get(&frontend)
                .ok_or(DomainError::NoFrontend(frontend))?;
            let server = hapi::server_name(prefix, &node)
                .map_err(|e| DomainError::BadNode(node.clone(), e))?;
            hapi::set_server(rt, backends, &server, action).map_err(DomainError::Pool)?;
            Ok(Outcome::NodeSet {
                action,
                backends: backends.clone(),
                node,
            })
        }
    }
}
