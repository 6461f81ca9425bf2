#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lbagent::fuzz::haproxy_replies(data));
