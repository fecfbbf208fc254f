# gwlbtun appliances behind a Gateway Load Balancer: the Terraform module, resource for resource
# the CloudFormation template deploy/cloudformation/gwlbtun.yaml (see README.md here and
# docs/deploy-aws.md). Checked without an AWS account by test/unit/terraform.test.ts: every .tf
# parsed by HashiCorp's HCL parser (@cdktf/hcl2json), the structure, the checkov rules it names,
# parity with the template; and, where terraform is installed, validate, fmt and terraform test
# (tests/plan.tftest.hcl, against a mock provider).
#
# Provider 5.91 or later: aws_lb_listener.tcp_idle_timeout_seconds (GWLB's TCP idle timeout is a
# listener attribute) and aws_lb_target_group.target_failover are both there.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.91.0"
    }
  }
}
