//! The LBaaS device registry (spec/device-api-v1.rst, DESIGN section 8): devices with unique
//! names and addresses, ids never reused, kept in `<state_dir>/devices.json`. Every change is
//! written atomically before it is acknowledged, and changes are serialized.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store;
use crate::timefmt::Utc;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: u64,
    pub updated: String,
    pub created: String,
    pub status: String,
    pub address: String,
    pub name: String,
    pub loadbalancer: u64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What is stored: the devices and the next id, which only grows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Db {
    next_id: u64,
    devices: Vec<Device>,
}

/// Why the registry refused a change; the API words it.
#[derive(Debug)]
pub enum DeviceError {
    /// A create without this field.
    Missing(&'static str),
    /// An update with neither name nor address.
    NothingToChange,
    /// Another device has this name.
    NameTaken(String),
    /// Another device has this address, as that device spells it.
    AddressTaken(String),
    NotFound(u64),
    Io(io::Error),
}

/// A device's name and/or address, as a request gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// `Mon 2012.10.29 at 07:21:48 PM UTC`, the spec's timestamp format.
pub fn timestamp(t: &Utc) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let (h12, ampm) = match t.hour {
        0 => (12, "AM"),
        1..=11 => (t.hour, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{} {}.{:02}.{:02} at {:02}:{:02}:{:02} {ampm} UTC",
        DAYS[t.weekday as usize % 7],
        t.year,
        t.month,
        t.day,
        h12,
        t.min,
        t.sec
    )
}

#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    db: Mutex<Db>,
}

/// Two spellings of one address (`::1`, `0:0::1`) are the same address.
fn same_address(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

impl Registry {
    /// Loads `<state_dir>/devices.json`; a missing file is an empty registry. A file that does
    /// not parse is an error: it is never silently replaced.
    pub fn open(state_dir: &Path) -> Result<Registry, String> {
        let path = state_dir.join("devices.json");
        let db = store::load_json(&path, "device registry", || Db {
            next_id: 1,
            devices: Vec::new(),
        })?;
        Ok(Registry {
            path,
            db: Mutex::new(db),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `next` and, only once it is on disk, makes it the registry.
    fn commit(&self, db: &mut Db, next: Db) -> Result<(), DeviceError> {
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| DeviceError::Io(io::Error::other(e)))?;
        store::write_atomic(&self.path, &bytes, 0o640).map_err(DeviceError::Io)?;
        *db = next;
        Ok(())
    }

    /// Devices with an id above `marker`, at most `limit`.
    pub fn list(&self, marker: u64, limit: usize) -> Vec<Device> {
        self.lock()
            .devices
            .iter()
            .filter(|d| d.id > marker)
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn get(&self, id: u64) -> Result<Device, DeviceError> {
        self.lock()
            .devices
            .iter()
            .find(|d| d.id == id)
            .cloned()
            .ok_or(DeviceError::NotFound(id))
    }

    /// (total, free, taken): free devices have no load balancer.
    pub fn usage(&self) -> (usize, usize, usize) {
        let db = self.lock();
        let free = db.devices.iter().filter(|d| d.loadbalancer == 0).count();
        (db.devices.len(), free, db.devices.len() - free)
    }

    fn check_unique(db: &Db, f: &Fields, except: Option<u64>) -> Result<(), DeviceError> {
        for d in db.devices.iter().filter(|d| Some(d.id) != except) {
            if f.name.as_deref() == Some(d.name.as_str()) {
                return Err(DeviceError::NameTaken(d.name.clone()));
            }
            if f.address
                .as_deref()
                .is_some_and(|a| same_address(a, &d.address))
            {
                return Err(DeviceError::AddressTaken(d.address.clone()));
            }
        }
        Ok(())
    }

    pub fn create(&self, f: Fields) -> Result<Device, DeviceError> {
        let (Some(name), Some(address)) = (f.name.clone(), f.address.clone()) else {
            let missing = if f.name.is_none() { "name" } else { "address" };
            return Err(DeviceError::Missing(missing));
        };
        let mut db = self.lock();
        Self::check_unique(&db, &f, None)?;
        let now = timestamp(&Utc::now());
        let device = Device {
            id: db.next_id,
            updated: now.clone(),
            created: now,
            status: "OFFLINE".into(),
            address,
            name,
            loadbalancer: 0,
            kind: "HAProxy".into(),
        };
        let mut next = db.clone();
        next.next_id += 1;
        next.devices.push(device.clone());
        self.commit(&mut db, next)?;
        Ok(device)
    }

    /// Changes name and/or address; bumps `updated`.
    pub fn update(&self, id: u64, f: Fields) -> Result<Device, DeviceError> {
        if f.name.is_none() && f.address.is_none() {
            return Err(DeviceError::NothingToChange);
        }
        let mut db = self.lock();
        let i = db
            .devices
            .iter()
            .position(|d| d.id == id)
            .ok_or(DeviceError::NotFound(id))?;
        Self::check_unique(&db, &f, Some(id))?;
        let mut next = db.clone();
        let d = &mut next.devices[i];
        if let Some(n) = f.name {
            d.name = n;
        }
        if let Some(a) = f.address {
            d.address = a;
        }
        d.updated = timestamp(&Utc::now());
        let device = d.clone();
        self.commit(&mut db, next)?;
        Ok(device)
    }

    pub fn delete(&self, id: u64) -> Result<(), DeviceError> {
        let mut db = self.lock();
        let mut next = db.clone();
        let before = next.devices.len();
        next.devices.retain(|d| d.id != id);
        if next.devices.len() == before {
            return Err(DeviceError::NotFound(id));
        }
        self.commit(&mut db, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn spec_timestamps() {
        assert_eq!(
            timestamp(&Utc::from_unix(1_351_538_508)),
            "Mon 2012.10.29 at 07:21:48 PM UTC"
        );
        assert_eq!(
            timestamp(&Utc::from_unix(0)),
            "Thu 1970.01.01 at 12:00:00 AM UTC"
        );
        assert_eq!(
            timestamp(&Utc::from_unix(43_200)),
            "Thu 1970.01.01 at 12:00:00 PM UTC"
        );
        assert_eq!(
            timestamp(&Utc::from_unix(3_600)),
            "Thu 1970.01.01 at 01:00:00 AM UTC"
        );
    }

    #[test]
    fn addresses_compare_as_addresses() {
        assert!(same_address("::1", "0:0::1"));
        assert!(!same_address("10.0.0.1", "10.0.0.2"));
    }

    #[test]
    fn ids_grow_and_uniqueness_holds() {
        let dir = std::env::temp_dir().join(format!("lbagent-dev-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let r = Registry::open(&dir).unwrap();
        let f = |n: &str, a: &str| Fields {
            name: Some(n.into()),
            address: Some(a.into()),
        };
        assert_eq!(r.create(f("a", "10.0.0.1")).unwrap().id, 1);
        assert_eq!(r.create(f("b", "10.0.0.2")).unwrap().id, 2);
        assert!(matches!(
            r.create(f("a", "10.0.0.3")),
            Err(DeviceError::NameTaken(n)) if n == "a"
        ));
        assert!(matches!(
            r.create(f("c", "10.0.0.1")),
            Err(DeviceError::AddressTaken(a)) if a == "10.0.0.1"
        ));
        let nameless = Fields {
            address: Some("10.0.0.9".into()),
            ..Fields::default()
        };
        assert!(matches!(
            r.create(nameless),
            Err(DeviceError::Missing("name"))
        ));
        assert!(matches!(
            r.update(1, Fields::default()),
            Err(DeviceError::NothingToChange)
        ));
        r.delete(2).unwrap();
        let r = Registry::open(&dir).unwrap();
        assert_eq!(r.create(f("c", "10.0.0.3")).unwrap().id, 3);
        assert_eq!(r.usage(), (2, 2, 0));
        fs::write(dir.join("devices.json"), b"{broken").unwrap();
        assert!(Registry::open(&dir)
            .unwrap_err()
            .contains("will not overwrite"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
