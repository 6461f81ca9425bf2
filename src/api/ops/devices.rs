//! The LBaaS device registry's operations (spec/device-api-v1.rst).

use crate::devices::{Fields, Registry};

use super::{Ctx, DomainError, Outcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceOp {
    /// Up to `limit` devices after id `marker`.
    List {
        marker: u64,
        limit: usize,
    },
    Create(Fields),
    Usage,
    Get(u64),
    Update(u64, Fields),
    Delete(u64),
}

pub fn execute(ctx: &Ctx, op: DeviceOp) -> Result<Outcome, DomainError> {
    let registry: &Registry = ctx.devices.as_ref().ok_or(DomainError::NoRegistry)?;
    Ok(match op {
        DeviceOp::List { marker, limit } => Outcome::Devices(registry.list(marker, limit)),
        DeviceOp::Create(f) => Outcome::Device(registry.create(f)?),
        DeviceOp::Usage => {
            let (total, free, taken) = registry.usage();
            Outcome::Usage { total, free, taken }
        }
        DeviceOp::Get(id) => Outcome::Device(registry.get(id)?),
        DeviceOp::Update(id, f) => Outcome::Device(registry.update(id, f)?),
        DeviceOp::Delete(id) => {
            registry.delete(id)?;
            Outcome::Done
        }
    })
}
