// Address policy: the ranges, checked on raw address bytes.
#include "downloader/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace thumbmill {
namespace {

struct Range4 {
  std::uint32_t base;
  int prefix;
};

bool in_range(std::uint32_t host_order, Range4 r) {
  const std::uint32_t mask = r.prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - r.prefix);
  return (host_order & mask) == (r.base & mask);
}

constexpr std::uint32_t ip4(int a, int b, int c, int d) {
  return static_cast<std::uint32_t>(a) << 24 | static_cast<std::uint32_t>(b) << 16 |
         static_cast<std::uint32_t>(c) << 8 | static_cast<std::uint32_t>(d);
}

AddressVerdict check_ipv4(std::uint32_t a) {
  if (in_range(a, {ip4(169, 254, 0, 0), 16})) return AddressVerdict::kLinkLocal;
  static constexpr std::array<Range4, 7> kPrivate = {{
      {ip4(0, 0, 0, 0), 8},
      {ip4(127, 0, 0, 0), 8},
      {ip4(10, 0, 0, 0), 8},
      {ip4(172, 16, 0, 0), 12},
      {ip4(192, 168, 0, 0), 16},
      {ip4(100, 64, 0, 0), 10},
      {ip4(255, 255, 255, 255), 32},
  }};
  for (const Range4& r : kPrivate)
    if (in_range(a, r)) return AddressVerdict::kPrivate;
  return AddressVerdict::kAllowed;
}

AddressVerdict check_ipv6(const unsigned char (&b)[16]) {
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) forms are
  // judged as the IPv4 address they carry.
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr unsigned char kZero[12] = {};
  const bool mapped = std::memcmp(b, kMapped, 12) == 0;
  const bool compatible = std::memcmp(b, kZero, 12) == 0;
  const std::uint32_t low = ip4(b[12], b[13], b[14], b[15]);
  if (mapped || (compatible && low > 1)) return check_ipv4(low);
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressVerdict::kLinkLocal;  // fe80::/10
  // fd00:ec2::254
  static constexpr unsigned char kEc2Metadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                                     0,    0,    0,    0,    0, 0, 0x02, 0x54};
  if (std::memcmp(b, kEc2Metadata, 16) == 0) return AddressVerdict::kLinkLocal;
  if (compatible) return AddressVerdict::kPrivate;                          // :: and ::1
  if ((b[0] & 0xfe) == 0xfc) return AddressVerdict::kPrivate;               // fc00::/7
  return AddressVerdict::kAllowed;
}

}  // namespace

AddressVerdict check_address(const sockaddr* address, socklen_t length, bool deny_private) {
  AddressVerdict verdict = AddressVerdict::kPrivate;
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    verdict = check_ipv4(ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr));
  } else if (address->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    verdict = check_ipv6(reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr);
  }
  if (verdict == AddressVerdict::kPrivate && !deny_private) return AddressVerdict::kAllowed;
  return verdict;
}

std::string address_text(const sockaddr* address, socklen_t length) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in)))
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  else if (address->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6)))
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text, sizeof text);
  return text;
}

}  // namespace thumbmill
