//! Where each region is served, shared by the tracking and admin APIs.

use tracklayer_core::workspace::Region;

/// The public base URL of each region: where a 421 sends a request that belongs to the other
/// region, and the base of the admin API's SAML URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEndpoints {
    pub us: String,
    pub eu: String,
}

impl Default for RegionEndpoints {
    fn default() -> Self {
        Self {
            us: "https://us.api.tracklayer.io".into(),
            eu: "https://eu.api.tracklayer.io".into(),
        }
    }
}

impl RegionEndpoints {
    /// The base URL of `region`.
    pub fn of(&self, region: Region) -> &str {
        match region {
            Region::Us => &self.us,
            Region::Eu => &self.eu,
        }
    }
}
