# The module's inputs: the CloudFormation template's parameters (deploy/cloudformation/gwlbtun.yaml),
# renamed to snake_case, with the same defaults and the same constraints as validation blocks
# (AllowedValues: contains(); AllowedPattern: regex(); MinValue/MaxValue: a range).
# test/unit/terraform.test.ts evaluates every condition below against values the template accepts
# and refuses, so keep them in the forms it reads: comparisons, &&, ||, !, contains, length,
# alltrue, can, regex, floor and [for x in var.v : ...].
#
# One deliberate difference from the template: no GwlbSubnetCidrs. Plain CloudFormation cannot
# look up the CIDR of a subnet it did not create, Terraform can (data.aws_subnet.gwlb in main.tf),
# so the security group rules and the --gwlb-cidr flags come from gwlb_subnet_ids themselves and
# cannot be mistyped.
# Added: name (a prefix for names and tags, where the template uses its stack name), tags, and
# deletion_protection.

variable "name" {
  description = "Prefix of the names of what the module creates, and their Name tag (the template uses its stack name). Letters, digits and '-', at most 20 characters."
  type        = string
  default     = "gwlbtun"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,19}$", var.name))
    error_message = "name: a letter, then letters, digits or '-', at most 20 characters."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them (through the provider's default_tags too, if you set those)."
  type        = map(string)
  default     = {}
}

# --- Network --------------------------------------------------------------------------------------

variable "vpc_id" {
  description = "The VPC of the appliances and the Gateway Load Balancer."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id: a VPC ID such as vpc-0123456789abcdef0."
  }
}

variable "gwlb_subnet_ids" {
  description = "Subnets of the Gateway Load Balancer, one per Availability Zone (1 to 6). GWLB sends Geneve and its health checks from its network interfaces in these subnets: their CIDRs (looked up) are the only sources allowed to reach UDP 6081 and the health port, and gwlbtun gets one --gwlb-cidr per CIDR. Keep them small (a /28) and for GWLB only."
  type        = list(string)

  validation {
    condition     = length(var.gwlb_subnet_ids) >= 1 && length(var.gwlb_subnet_ids) <= 6 && alltrue([for s in var.gwlb_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "gwlb_subnet_ids: 1 to 6 subnet IDs such as subnet-0123456789abcdef0, one per Availability Zone."
  }
}

variable "appliance_subnet_ids" {
  description = "Subnets the Auto Scaling group launches appliances in (may be the GWLB subnets), in the same Availability Zones."
  type        = list(string)

  validation {
    condition     = length(var.appliance_subnet_ids) >= 1 && alltrue([for s in var.appliance_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "appliance_subnet_ids: at least one subnet ID such as subnet-0123456789abcdef0."
  }
}

variable "cross_zone" {
  description = "Cross-zone load balancing on the GWLB (off by default on GWLB)."
  type        = bool
  default     = false
}

# --- Appliance ------------------------------------------------------------------------------------

variable "architecture" {
  description = "CPU of the instances (x64 = x86_64, arm64 = aarch64); must match instance_type and the RPM of release_url."
  type        = string
  default     = "x64"

  validation {
    condition     = contains(["x64", "arm64"], var.architecture)
    error_message = "architecture: x64 or arm64."
  }
}

variable "instance_type" {
  description = "EC2 instance type (x86_64 e.g. c6in.large, c7i.large; arm64 e.g. c7gn.large, c6gn.large). See docs/deploy-aws.md, Sizing."
  type        = string
  default     = "c6in.large"
}

variable "node_major" {
  description = "Node.js major version installed from Amazon Linux 2023's packages (nodejs<N>) before the RPM, which requires one of them."
  type        = string
  default     = "22"

  validation {
    condition     = contains(["20", "22", "24"], var.node_major)
    error_message = "node_major: 20, 22 or 24."
  }
}

variable "release_url" {
  description = "HTTPS URL of gwlbtun-<version>-<release>.<x86_64|aarch64>.rpm (npm run package) for the chosen architecture, e.g. an S3 presigned or public URL."
  type        = string

  validation {
    condition     = can(regex("^https://\\S+\\.rpm(\\?\\S*)?$", var.release_url))
    error_message = "release_url: an https:// URL of a .rpm release."
  }
}

variable "release_sha256" {
  description = "SHA-256 of the RPM (its line in SHA256SUMS, 64 lowercase hex digits); the instances refuse a package that does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.release_sha256))
    error_message = "release_sha256: the RPM's SHA-256, 64 lowercase hex digits (its line in SHA256SUMS)."
  }
}

variable "hook" {
  description = "Example hook run at endpoint CREATE/DESTROY (examples/hooks/<name>.sh in the release)."
  type        = string
  default     = "one-arm"

  validation {
    condition     = contains(["one-arm", "passthrough", "overlapping-cidrs"], var.hook)
    error_message = "hook: one-arm, passthrough or overlapping-cidrs."
  }
}

variable "health_port" {
  description = "gwlbtun's -p port, where the target group's HTTP health check goes (1024 or above, the unit has no CAP_NET_BIND_SERVICE)."
  type        = number
  default     = 8080

  validation {
    condition     = var.health_port >= 1024 && var.health_port <= 65535 && floor(var.health_port) == var.health_port
    error_message = "health_port: a whole number from 1024 to 65535."
  }
}

variable "tcp_idle_timeout" {
  description = "TCP flow idle timeout in seconds, set both on the GWLB listener and in gwlbtun (-i)."
  type        = number
  default     = 350

  validation {
    condition     = var.tcp_idle_timeout >= 60 && var.tcp_idle_timeout <= 6000 && floor(var.tcp_idle_timeout) == var.tcp_idle_timeout
    error_message = "tcp_idle_timeout: a whole number of seconds from 60 to 6000."
  }
}

variable "deletion_protection" {
  description = "Deletion protection on the GWLB (off by default, as in the template, so that terraform destroy works)."
  type        = bool
  default     = false
}

# --- Scaling and draining -------------------------------------------------------------------------

variable "min_size" {
  description = "Fewest appliances in the Auto Scaling group."
  type        = number
  default     = 2

  validation {
    condition     = var.min_size >= 1 && floor(var.min_size) == var.min_size
    error_message = "min_size: a whole number, 1 or more."
  }
}

variable "max_size" {
  description = "Most appliances in the Auto Scaling group."
  type        = number
  default     = 6

  validation {
    condition     = var.max_size >= 1 && floor(var.max_size) == var.max_size
    error_message = "max_size: a whole number, 1 or more."
  }
}

variable "desired_capacity" {
  description = "Appliances at creation; target tracking changes it later (Terraform then leaves it alone: ignore_changes)."
  type        = number
  default     = 2

  validation {
    condition     = var.desired_capacity >= 1 && floor(var.desired_capacity) == var.desired_capacity
    error_message = "desired_capacity: a whole number, 1 or more."
  }
}

variable "cpu_target_percent" {
  description = "Target tracking on the group's average CPU utilisation."
  type        = number
  default     = 50

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent: 10 to 90."
  }
}

variable "deregistration_delay_seconds" {
  description = "Target group deregistration delay: how long GWLB keeps sending a deregistered appliance the flows it already has. Keep termination_wait_seconds above it."
  type        = number
  default     = 300

  validation {
    condition     = var.deregistration_delay_seconds >= 0 && var.deregistration_delay_seconds <= 3600 && floor(var.deregistration_delay_seconds) == var.deregistration_delay_seconds
    error_message = "deregistration_delay_seconds: a whole number from 0 to 3600."
  }
}

variable "termination_wait_seconds" {
  description = "Termination lifecycle hook timeout: how long a terminating instance stays up (Terminating:Wait) before it shuts down; at least deregistration_delay_seconds plus a margin."
  type        = number
  default     = 330

  validation {
    condition     = var.termination_wait_seconds >= 30 && var.termination_wait_seconds <= 7200 && floor(var.termination_wait_seconds) == var.termination_wait_seconds
    error_message = "termination_wait_seconds: a whole number from 30 to 7200."
  }
}

variable "drain_seconds" {
  description = "gwlbtun --drain: after SIGTERM, packets keep flowing for up to this long while the health check answers 503, for flows still arriving at shutdown."
  type        = number
  default     = 10

  validation {
    condition     = var.drain_seconds >= 0 && var.drain_seconds <= 60 && floor(var.drain_seconds) == var.drain_seconds
    error_message = "drain_seconds: a whole number from 0 to 60."
  }
}

variable "flow_rebalance" {
  description = "Target failover of existing flows when a target is deregistered or unhealthy: no_rebalance (GWLB's default: they stay) or rebalance (they move to healthy targets)."
  type        = string
  default     = "no_rebalance"

  validation {
    condition     = contains(["no_rebalance", "rebalance"], var.flow_rebalance)
    error_message = "flow_rebalance: no_rebalance or rebalance."
  }
}

# --- Endpoint service -----------------------------------------------------------------------------

variable "acceptance_required" {
  description = "Whether each GWLB endpoint connection must be accepted by hand."
  type        = bool
  default     = true
}

variable "allowed_principals" {
  description = "ARNs allowed to create endpoints to the service (e.g. arn:aws:iam::123456789012:root); empty for none but this account."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.allowed_principals : can(regex("^arn:aws[a-z-]*:iam::", p))])
    error_message = "allowed_principals: IAM ARNs such as arn:aws:iam::123456789012:root."
  }
}
