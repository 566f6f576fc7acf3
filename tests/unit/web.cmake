# Unit tests of the web console's pieces in common/ (HMAC-SHA256 of the session cookies).
jetsched_unit_test(test_hmac)
