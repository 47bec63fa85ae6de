//! Provider authentication: `private_key_jwt` client assertions at the token endpoint, and the
//! bearer tokens issued for them.

pub mod assertion;
pub mod bearer;
