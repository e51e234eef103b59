// SHA-256 in pieces (base/hash.h): the same digest as in one piece, with
// golden values (frame hashes and cache keys are persisted).
#include "base/hash.h"

#include <gtest/gtest.h>

#include <string>

namespace smithers::base {
namespace {

TEST(Sha256, GoldenDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256().HexDigest(), Sha256Hex(""));
}

// RFC 4231 test cases 1 and 2 (the audit log's row HMACs are persisted).
TEST(HmacSha256, Rfc4231Vectors) {
  EXPECT_EQ(HmacSha256Hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(RandomHex, GivesTwoHexDigitsPerByteAndDiffers) {
  const std::string a = RandomHex(32);
  EXPECT_EQ(a.size(), 64U);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, RandomHex(32));
}

TEST(Sha256, PiecesAndCopiesGiveTheOnePieceDigest) {
  Sha256 h;
  h.Update("a");
  h.Update("b");
  Sha256 after_ab = h;  // a copy continues from the same state
  h.Update("c");
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc"));
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc")) << "reading the digest does not end it";
  after_ab.Update("d");
  EXPECT_EQ(after_ab.HexDigest(), Sha256Hex("abd"));
  h.Update("def");
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abcdef"));
  after_ab = h;
  EXPECT_EQ(after_ab.HexDigest(), Sha256Hex("abcdef"));
  std::string big(100000, 'x');
  Sha256 b;
  for (size_t i = 0; i < big.size(); i += 777) b.Update(std::string_view(big).substr(i, 777));
  EXPECT_EQ(b.HexDigest(), Sha256Hex(big));
}

}  // namespace
}  // namespace smithers::base
