// Address policy: which peers the downloader may connect to. The list comes
// from hands we do not trust, so the check is made on the address a socket
// is about to connect to (libcurl's CURLOPT_OPENSOCKETFUNCTION, before
// connect, for the first request and for every redirect hop), never on the
// text of a URL: a DNS name, a decimal or hex IPv4 literal, or an IPv4-mapped
// IPv6 address cannot get round it.
//
// Always refused: link-local and cloud metadata addresses (169.254.0.0/16,
// fe80::/10, fd00:ec2::254). With --deny-private also: loopback, private and
// shared ranges (0.0.0.0/8, 127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12,
// 192.168.0.0/16, 100.64.0.0/10, ::, ::1, fc00::/7), in IPv4-mapped and
// IPv4-compatible forms too.
#pragma once

#include <sys/socket.h>

#include <string>

namespace thumbmill {

enum class AddressVerdict {
  kAllowed,
  kLinkLocal,  // refused always: link-local or cloud metadata
  kPrivate,    // refused under --deny-private: loopback or private range
};

/// The verdict for `address` (AF_INET or AF_INET6; any other family is
/// kPrivate, i.e. refused whenever private addresses are, and otherwise
/// allowed). `deny_private` false turns kPrivate into kAllowed.
AddressVerdict check_address(const sockaddr* address, socklen_t length, bool deny_private);

/// "169.254.169.254" / "fe80::1": the numeric form, for messages.
std::string address_text(const sockaddr* address, socklen_t length);

}  // namespace thumbmill
