/* Unit tests of HMAC-SHA256 (RFC 4231 test cases) and the constant-time compare
 * behind the web console's signed session cookies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jetsched/sha256.h>

#include <stdio.h>
#include <string.h>

static void hex(const uint8_t *d, char *out)
{
    for (int i = 0; i < JET_SHA256_LEN; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void check(const void *key, size_t klen, const void *data, size_t len, const char *want)
{
    uint8_t mac[JET_SHA256_LEN];
    char got[65];
    jet_hmac_sha256(key, klen, data, len, mac);
    hex(mac, got);
    assert_string_equal(got, want);
}

static void rfc4231(void **state)
{
    (void)state;
    uint8_t k1[20];
    memset(k1, 0x0b, sizeof k1);
    check(k1, sizeof k1, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check("Jefe", 4, "what do ya want for nothing?", 28,
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    uint8_t k3[20], d3[50];
    memset(k3, 0xaa, sizeof k3);
    memset(d3, 0xdd, sizeof d3);
    check(k3, sizeof k3, d3, sizeof d3, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    /* Test case 6: a key longer than the block size is hashed first. */
    uint8_t k6[131];
    memset(k6, 0xaa, sizeof k6);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    check(k6, sizeof k6, d6, strlen(d6), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void consttime_compare(void **state)
{
    (void)state;
    assert_true(jet_memeq_consttime("abcdef", "abcdef", 6));
    assert_false(jet_memeq_consttime("abcdef", "abcdeg", 6));
    assert_false(jet_memeq_consttime("xbcdef", "abcdef", 6));
    assert_true(jet_memeq_consttime("", "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(rfc4231), cmocka_unit_test(consttime_compare)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
