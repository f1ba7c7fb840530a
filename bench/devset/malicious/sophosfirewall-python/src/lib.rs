//! Minimal client for the Sophos Firewall XML API.

/// Builds the `<Request>` XML for a `Get` of `entity`.
pub fn get_request(user: &str, password: &str, entity: &str) -> String {
    format!(
        "<Request><Login><Username>{}</Username><Password>{}</Password></Login><Get><{}/></Get></Request>",
        xml_escape(user),
        xml_escape(password),
        entity
    )
}

/// Builds a `Set` request that adds an IP host object.
pub fn add_ip_host(user: &str, password: &str, name: &str, ip: &str) -> String {
    format!(
        "<Request><Login><Username>{}</Username><Password>{}</Password></Login><Set operation=\"add\"><IPHost><Name>{}</Name><IPFamily>IPv4</IPFamily><HostType>IP</HostType><IPAddress>{}</IPAddress></IPHost></Set></Request>",
        xml_escape(user),
        xml_escape(password),
        xml_escape(name),
        xml_escape(ip)
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
