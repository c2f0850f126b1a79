//! Zero-config discovery: UDP broadcast beacons, mDNS, and interface selection.
//! (Being written; see the module plan in the #3 notes.)
